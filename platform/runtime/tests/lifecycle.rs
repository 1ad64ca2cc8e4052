//! The lifecycle machinery on a small declared schema (notes, some owned by an app, and
//! tags), on every configured backend: site level, row level, point in time, purge,
//! idempotency, validate_only, holds, history pruning and audit.

use std::{sync::Arc, time::Duration};

use micros_platform::{
    clock::TestClock,
    config::LifecycleConfig,
    error::PlatformError,
    ids::{AppInstallationId, OperationId, SiteId},
    lifecycle::{
        Justification, Lifecycle, LifecycleError, LifecycleRequest, LiveTenant, NoHooks,
        RestoreSource, Target, TargetOutcome, TenantState, Value,
        schema::{TableSpec, TenantSchema, int, text},
    },
    store::{Backend, Migrations, Store},
    testing::{self, TestStore},
};

const SCHEMA: TenantSchema = TenantSchema {
    tables: &[
        TableSpec {
            name: "notes",
            key: "note_id",
            columns: &[text("note_id"), text("app_id"), text("title"), int("size")],
            owner: Some("app_id"),
            unique_across_sites: &[],
        },
        TableSpec {
            name: "tags",
            key: "tag_id",
            columns: &[text("tag_id"), text("note_id"), text("label")],
            owner: None,
            unique_across_sites: &[],
        },
    ],
};

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Fixture {
    lifecycle: Lifecycle,
    clock: TestClock,
    _store: TestStore,
}

async fn fixture(backend: Backend) -> Fixture {
    let store = TestStore::new(backend);
    let migrations = Migrations {
        sqlite: sqlx::migrate!("./tests/migrations/sqlite"),
        postgres: sqlx::migrate!("./tests/migrations/postgres"),
    };
    let opened = Store::open(&store.config, "notes", &migrations)
        .await
        .unwrap();
    let clock = TestClock::new();
    let lifecycle = Lifecycle::open(
        opened,
        SCHEMA,
        Arc::new(clock.clone()),
        LifecycleConfig {
            purge_batch_size: 7,
            ..LifecycleConfig::default()
        },
        Arc::new(NoHooks),
    )
    .await
    .unwrap();
    Fixture {
        lifecycle,
        clock,
        _store: store,
    }
}

fn request(targets: Vec<Target>) -> LifecycleRequest {
    LifecycleRequest {
        targets,
        operation_id: OperationId::new(),
        justification: Justification {
            principal: "test-orchestrator".to_owned(),
            reason: "test".to_owned(),
            ticket: "INC-1".to_owned(),
        },
        validate_only: false,
        lease_token: None,
        call_key: String::new(),
        grant: None,
    }
}

/// Writes `notes` notes (every third owned by `app`) with a tag each.
async fn populate(
    tenant: &LiveTenant,
    notes: usize,
    app: Option<AppInstallationId>,
) -> Vec<String> {
    let mut tx = tenant.begin().await.unwrap();
    let mut keys = Vec::new();
    for index in 0..notes {
        let note_id = format!("note-{}-{index}", tenant.site_id());
        let owner = app.filter(|_| index % 3 == 0).map(|app| app.to_string());
        tx.insert(
            "notes",
            &[
                ("note_id", Value::from(note_id.as_str())),
                ("app_id", Value::from(owner)),
                ("title", Value::from(format!("Note {index}"))),
                ("size", Value::from(index as i64 * 10)),
            ],
        )
        .await
        .unwrap();
        tx.insert(
            "tags",
            &[
                ("tag_id", Value::from(format!("tag-{note_id}"))),
                ("note_id", Value::from(note_id.as_str())),
                ("label", Value::from("red")),
            ],
        )
        .await
        .unwrap();
        keys.push(note_id);
    }
    tx.commit().await.unwrap();
    keys
}

async fn describe(lifecycle: &Lifecycle, target: Target) -> TargetOutcome {
    lifecycle.describe(&[target]).await.unwrap().remove(0)
}

async fn fingerprint(lifecycle: &Lifecycle, site_id: SiteId) -> String {
    describe(lifecycle, Target::Site(site_id)).await.fingerprint
}

fn live(outcome: &TargetOutcome, table: &str) -> i64 {
    outcome
        .counts
        .iter()
        .find(|count| count.table == table)
        .unwrap()
        .live
}

#[tokio::test]
async fn site_soft_delete_flips_the_registry_and_restore_brings_back_the_same_fingerprint() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            _store: _guard,
            ..
        } = fixture(backend).await;
        let (a, b) = (SiteId::new(), SiteId::new());
        let tenant_a = lifecycle.register(a).await.unwrap();
        populate(&tenant_a, 10, None).await;
        populate(&lifecycle.register(b).await.unwrap(), 5, None).await;
        let (before_a, before_b) = (
            fingerprint(&lifecycle, a).await,
            fingerprint(&lifecycle, b).await,
        );
        assert_ne!(before_a, before_b);

        let delete = request(vec![Target::Site(a)]);
        let deleted = lifecycle.soft_delete(&delete).await.unwrap().remove(0);
        assert_eq!(deleted.state, TenantState::Deleted, "{backend:?}");
        assert_eq!(
            deleted.rows_affected, 0,
            "a site-level delete touches no data row"
        );
        assert_eq!(deleted.fingerprint, before_a);
        assert_eq!(live(&deleted, "notes"), 10);
        let expire = deleted.expire_time.unwrap() - deleted.delete_time.unwrap();
        assert_eq!(
            expire,
            30 * 24 * 3600 * 1_000_000,
            "30 days of retention by default"
        );

        assert!(matches!(
            lifecycle.live(a).await,
            Err(LifecycleError::SiteDeleted { .. })
        ));
        assert!(
            matches!(
                tenant_a.begin().await,
                Err(LifecycleError::SiteDeleted { .. })
            ),
            "a handle taken before the delete cannot write after it"
        );
        assert_eq!(
            fingerprint(&lifecycle, a).await,
            before_a,
            "same while deleted"
        );
        assert_eq!(
            fingerprint(&lifecycle, b).await,
            before_b,
            "the neighbour is untouched"
        );

        let restore = request(vec![Target::Site(a)]);
        let restored = lifecycle
            .restore(&restore, RestoreSource::Operation(delete.operation_id))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(restored.state, TenantState::Active);
        assert_eq!(restored.fingerprint, before_a);
        assert!(lifecycle.live(a).await.is_ok());
        assert_eq!(fingerprint(&lifecycle, b).await, before_b);
    }
}

/// (change-log entries, digest version) of `site`: what a write to its rows would move.
async fn write_marks(lifecycle: &Lifecycle, site: SiteId) -> (i64, i64) {
    let pool = lifecycle.store().pool();
    let changes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenant_changes WHERE site_id = $1")
        .bind(site.to_string())
        .fetch_one(pool)
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM tenant_digests WHERE site_id = $1",
    )
    .bind(site.to_string())
    .fetch_one(pool)
    .await
    .unwrap();
    (changes, version)
}

#[tokio::test]
async fn site_level_delete_and_restore_log_nothing_and_keep_the_cached_summary() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            _store: _guard,
            ..
        } = fixture(backend).await;
        let (site, app) = (SiteId::new(), AppInstallationId::new());
        populate(&lifecycle.register(site).await.unwrap(), 9, Some(app)).await;
        let before = fingerprint(&lifecycle, site).await;
        let marks = write_marks(&lifecycle, site).await;

        let delete = request(vec![Target::Site(site)]);
        lifecycle.soft_delete(&delete).await.unwrap();
        let restored = lifecycle
            .restore(
                &request(vec![Target::Site(site)]),
                RestoreSource::Operation(delete.operation_id),
            )
            .await
            .unwrap()
            .remove(0);
        assert_eq!(restored.fingerprint, before, "{backend:?}");
        assert_eq!(restored.rows_affected, 0);
        assert_eq!(
            write_marks(&lifecycle, site).await,
            marks,
            "{backend:?}: a site-level delete and restore log no row and leave the cached summary valid"
        );

        // An operation that did mark rows in the site (an uninstall), undone with the
        // site as target, still revives exactly those rows and invalidates the summary.
        let app_target = Target::AppInstallation {
            site_id: site,
            app_installation_id: app,
        };
        let uninstall = request(vec![app_target]);
        assert_eq!(
            lifecycle.soft_delete(&uninstall).await.unwrap()[0].rows_affected,
            3
        );
        let (_, version_after_uninstall) = write_marks(&lifecycle, site).await;
        let revived = lifecycle
            .restore(
                &request(vec![Target::Site(site)]),
                RestoreSource::Operation(uninstall.operation_id),
            )
            .await
            .unwrap()
            .remove(0);
        assert_eq!(revived.rows_affected, 3, "{backend:?}");
        assert_eq!(revived.fingerprint, before);
        assert!(write_marks(&lifecycle, site).await.1 > version_after_uninstall);
        assert_eq!(fingerprint(&lifecycle, site).await, before);
    }
}

#[tokio::test]
async fn app_rows_deleted_by_an_operation_come_back_but_earlier_deletions_stay() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            _store: _guard,
            ..
        } = fixture(backend).await;
        let site = SiteId::new();
        let app = AppInstallationId::new();
        let tenant = lifecycle.register(site).await.unwrap();
        let notes = populate(&tenant, 9, Some(app)).await;
        let mut tx = tenant.begin().await.unwrap();
        assert_eq!(
            tx.trash("notes", &notes[3], "usr_someone").await.unwrap(),
            1
        );
        tx.commit().await.unwrap();
        let app_target = Target::AppInstallation {
            site_id: site,
            app_installation_id: app,
        };
        let site_before = fingerprint(&lifecycle, site).await;
        let app_before = describe(&lifecycle, app_target).await;
        assert_eq!(
            live(&app_before, "notes"),
            2,
            "notes 0 and 6; 3 was trashed by a user"
        );

        let uninstall = request(vec![app_target]);
        let deleted = lifecycle.soft_delete(&uninstall).await.unwrap().remove(0);
        assert_eq!(deleted.rows_affected, 2, "{backend:?}");
        assert_eq!(
            deleted.fingerprint, app_before.fingerprint,
            "what was deleted"
        );
        assert_eq!(deleted.state, TenantState::Deleted);
        let site_during = describe(&lifecycle, Target::Site(site)).await;
        assert_eq!(live(&site_during, "notes"), 6);
        assert_eq!(
            site_during.state,
            TenantState::Active,
            "only the app's rows went"
        );

        let restored = lifecycle
            .restore(
                &request(vec![app_target]),
                RestoreSource::Operation(uninstall.operation_id),
            )
            .await
            .unwrap()
            .remove(0);
        assert_eq!(restored.fingerprint, app_before.fingerprint);
        assert_eq!(restored.rows_affected, 2);
        let site_after = describe(&lifecycle, Target::Site(site)).await;
        assert_eq!(site_after.fingerprint, site_before);
        assert_eq!(
            live(&site_after, "notes"),
            8,
            "the user's trashed note stays deleted"
        );
    }
}

#[tokio::test]
async fn wrong_site_for_an_app_matches_nothing() {
    let Fixture {
        lifecycle,
        _store: _guard,
        ..
    } = fixture(Backend::Sqlite).await;
    let (site, other) = (SiteId::new(), SiteId::new());
    let app = AppInstallationId::new();
    populate(&lifecycle.register(site).await.unwrap(), 6, Some(app)).await;
    lifecycle.register(other).await.unwrap();
    let before = fingerprint(&lifecycle, site).await;
    let mismatched = Target::AppInstallation {
        site_id: other,
        app_installation_id: app,
    };
    let outcome = lifecycle
        .soft_delete(&request(vec![mismatched]))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(outcome.rows_affected, 0);
    assert_eq!(fingerprint(&lifecycle, site).await, before);
}

#[tokio::test]
async fn point_in_time_restore_returns_one_tenant_and_can_itself_be_undone() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            clock,
            _store: _guard,
        } = fixture(backend).await;
        let (site, neighbour) = (SiteId::new(), SiteId::new());
        let tenant = lifecycle.register(site).await.unwrap();
        let notes = populate(&tenant, 6, None).await;
        populate(&lifecycle.register(neighbour).await.unwrap(), 4, None).await;
        let at_t = fingerprint(&lifecycle, site).await;
        let neighbour_at_t = fingerprint(&lifecycle, neighbour).await;
        clock.advance(Duration::from_secs(1));
        let t = lifecycle.now();
        clock.advance(Duration::from_secs(1));

        let mut tx = tenant.begin().await.unwrap();
        tx.update("notes", &notes[0], &[("title", Value::from("corrupted"))])
            .await
            .unwrap();
        tx.update("notes", &notes[1], &[("size", Value::from(-1))])
            .await
            .unwrap();
        tx.delete("notes", &notes[2]).await.unwrap();
        tx.trash("notes", &notes[3], "usr_x").await.unwrap();
        tx.insert(
            "notes",
            &[
                ("note_id", Value::from("intruder")),
                ("title", Value::from("new")),
                ("size", Value::from(1)),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let corrupted = fingerprint(&lifecycle, site).await;
        assert_ne!(corrupted, at_t);
        clock.advance(Duration::from_secs(1));

        let before_restore = lifecycle.now();
        let restored = lifecycle
            .restore(
                &request(vec![Target::Site(site)]),
                RestoreSource::PointInTime(t),
            )
            .await
            .unwrap()
            .remove(0);
        assert_eq!(restored.fingerprint, at_t, "{backend:?}");
        assert_eq!(live(&restored, "notes"), 6);
        assert_eq!(fingerprint(&lifecycle, neighbour).await, neighbour_at_t);

        let undone = lifecycle
            .restore(
                &request(vec![Target::Site(site)]),
                RestoreSource::PointInTime(before_restore),
            )
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            undone.fingerprint, corrupted,
            "the restore was logged and is undone"
        );
        assert_eq!(fingerprint(&lifecycle, neighbour).await, neighbour_at_t);
    }
}

#[tokio::test]
async fn point_in_time_outside_history_is_refused() {
    let Fixture {
        lifecycle,
        clock,
        _store: _guard,
    } = fixture(Backend::Sqlite).await;
    let site = SiteId::new();
    populate(&lifecycle.register(site).await.unwrap(), 3, None).await;
    let long_ago = lifecycle.now();
    clock.advance(31 * DAY);
    let error = lifecycle
        .restore(
            &request(vec![Target::Site(site)]),
            RestoreSource::PointInTime(long_ago),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, LifecycleError::PointInTimeTooOld { .. }),
        "{error}"
    );
    let future = lifecycle.now() + 3_600_000_000;
    let error = lifecycle
        .restore(
            &request(vec![Target::Site(site)]),
            RestoreSource::PointInTime(future),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LifecycleError::Platform(PlatformError::InvalidArgument(_))
        ),
        "{error}"
    );

    assert!(
        lifecycle.prune_history().await.unwrap() >= 6,
        "history past retention is pruned"
    );
    assert_eq!(lifecycle.prune_history().await.unwrap(), 0);
}

#[tokio::test]
async fn purge_waits_for_expiry_and_holds_then_removes_rows_and_keeps_a_tombstone() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            clock,
            _store: _guard,
        } = fixture(backend).await;
        let (site, neighbour) = (SiteId::new(), SiteId::new());
        populate(&lifecycle.register(site).await.unwrap(), 20, None).await;
        populate(&lifecycle.register(neighbour).await.unwrap(), 4, None).await;
        let neighbour_before = fingerprint(&lifecycle, neighbour).await;
        let target = vec![Target::Site(site)];

        let early = request(target.clone());
        assert!(matches!(
            lifecycle.purge(&early).await.unwrap_err(),
            LifecycleError::NotDeleted { .. }
        ));
        lifecycle
            .soft_delete(&request(target.clone()))
            .await
            .unwrap();
        let error = lifecycle.purge(&early).await.unwrap_err();
        assert!(
            matches!(error, LifecycleError::PurgeBeforeExpiry { .. }),
            "{backend:?}: {error}"
        );
        assert_eq!(
            live(&describe(&lifecycle, target[0]).await, "notes"),
            20,
            "nothing purged"
        );

        lifecycle
            .set_hold(&request(target.clone()), true)
            .await
            .unwrap();
        clock.advance(31 * DAY);
        assert!(matches!(
            lifecycle.purge(&request(target.clone())).await.unwrap_err(),
            LifecycleError::OnHold { .. }
        ));
        lifecycle
            .set_hold(&request(target.clone()), false)
            .await
            .unwrap();

        let purge = request(target.clone());
        let purged = lifecycle.purge(&purge).await.unwrap().remove(0);
        assert_eq!(purged.state, TenantState::Purged);
        assert_eq!(
            purged.rows_affected, 40,
            "20 notes and 20 tags, in batches of 7"
        );
        assert!(
            purged
                .counts
                .iter()
                .all(|count| count.live == 0 && count.deleted == 0)
        );
        let again = lifecycle.purge(&purge).await.unwrap().remove(0);
        assert_eq!(
            again.rows_affected, 0,
            "the same operation again is a no-op"
        );
        assert_eq!(again.state, TenantState::Purged);

        assert!(matches!(
            lifecycle.live(site).await,
            Err(LifecycleError::SiteDeleted { .. })
        ));
        assert!(
            matches!(
                lifecycle.register(site).await,
                Err(LifecycleError::SiteDeleted { .. })
            ),
            "a purged site's ID is never reused"
        );
        assert_eq!(fingerprint(&lifecycle, neighbour).await, neighbour_before);
        let trail = lifecycle.audit_trail(purge.operation_id).await.unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].2, "applied");
        let refused = lifecycle.audit_trail(early.operation_id).await.unwrap();
        assert!(
            refused
                .iter()
                .any(|(_, _, outcome)| outcome == "refused: PURGE_BEFORE_EXPIRY"),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn operations_are_idempotent_and_validate_only_changes_nothing() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            _store: _guard,
            ..
        } = fixture(backend).await;
        let sites: Vec<SiteId> = (0..3).map(|_| SiteId::new()).collect();
        for site in &sites {
            populate(&lifecycle.register(*site).await.unwrap(), 2, None).await;
        }
        let targets: Vec<Target> = sites.iter().copied().map(Target::Site).collect();

        let mut dry = request(targets.clone());
        dry.validate_only = true;
        let predicted = lifecycle.soft_delete(&dry).await.unwrap();
        assert!(
            predicted
                .iter()
                .all(|outcome| outcome.state == TenantState::Deleted)
        );
        for site in &sites {
            assert!(
                lifecycle.live(*site).await.is_ok(),
                "validate_only deleted nothing"
            );
        }

        let delete = request(targets.clone());
        let first = lifecycle.soft_delete(&delete).await.unwrap();
        let second = lifecycle.soft_delete(&delete).await.unwrap();
        assert_eq!(
            first, second,
            "{backend:?}: a repeated call answers the same"
        );

        let mut next_wave = request(targets[..1].to_vec());
        next_wave.operation_id = delete.operation_id;
        let overlapping = lifecycle.soft_delete(&next_wave).await.unwrap();
        assert_eq!(
            overlapping[0].state,
            TenantState::Deleted,
            "a wave of the same operation"
        );
        let mut reused = request(targets.clone());
        reused.operation_id = delete.operation_id;
        assert!(
            matches!(
                lifecycle
                    .restore(&reused, RestoreSource::Operation(delete.operation_id))
                    .await
                    .unwrap_err(),
                LifecycleError::OperationReused { .. }
            ),
            "a deleting operation's ID cannot name a restore"
        );
        let again = request(targets[..1].to_vec());
        assert!(matches!(
            lifecycle.soft_delete(&again).await.unwrap_err(),
            LifecycleError::AlreadyDeleted { .. }
        ));
        let wrong_undo = lifecycle
            .restore(
                &request(targets.clone()),
                RestoreSource::Operation(OperationId::new()),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            wrong_undo,
            LifecycleError::DeletedByAnotherOperation { .. }
        ));
        for site in &sites {
            assert!(
                lifecycle.live(*site).await.is_err(),
                "a refused restore restored nothing"
            );
        }
    }
}

#[tokio::test]
async fn an_app_of_a_site_this_service_holds_nothing_of_is_uninstalled_and_back_as_absent() {
    let Fixture {
        lifecycle,
        _store: _guard,
        ..
    } = fixture(Backend::Sqlite).await;
    let (absent, deleted) = (SiteId::new(), SiteId::new());
    lifecycle.register(deleted).await.unwrap();
    lifecycle
        .soft_delete(&request(vec![Target::Site(deleted)]))
        .await
        .unwrap();
    let app_of = |site_id| Target::AppInstallation {
        site_id,
        app_installation_id: AppInstallationId::new(),
    };
    let uninstall = request(vec![app_of(absent)]);
    let outcome = lifecycle.soft_delete(&uninstall).await.unwrap().remove(0);
    assert_eq!(
        (outcome.state, outcome.rows_affected),
        (TenantState::Absent, 0)
    );
    let restored = lifecycle
        .restore(
            &request(uninstall.targets.clone()),
            RestoreSource::Operation(uninstall.operation_id),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(restored.state, TenantState::Absent);
    assert!(
        matches!(
            lifecycle
                .soft_delete(&request(vec![app_of(deleted)]))
                .await
                .unwrap_err(),
            LifecycleError::NotActive { .. }
        ),
        "an app of a deleted site is still refused"
    );
}

#[tokio::test]
async fn a_refused_target_refuses_the_whole_call() {
    let Fixture {
        lifecycle,
        _store: _guard,
        ..
    } = fixture(Backend::Sqlite).await;
    let (fresh, gone) = (SiteId::new(), SiteId::new());
    lifecycle.register(fresh).await.unwrap();
    lifecycle.register(gone).await.unwrap();
    lifecycle
        .soft_delete(&request(vec![Target::Site(gone)]))
        .await
        .unwrap();
    let both = request(vec![Target::Site(fresh), Target::Site(gone)]);
    assert!(lifecycle.soft_delete(&both).await.is_err());
    assert!(
        lifecycle.live(fresh).await.is_ok(),
        "no half-applied deletion"
    );

    let duplicate = request(vec![Target::Site(fresh), Target::Site(fresh)]);
    assert!(matches!(
        lifecycle.soft_delete(&duplicate).await.unwrap_err(),
        LifecycleError::Platform(PlatformError::InvalidArgument(_))
    ));
    let mut unjustified = request(vec![Target::Site(fresh)]);
    unjustified.justification.reason.clear();
    assert!(matches!(
        lifecycle.soft_delete(&unjustified).await.unwrap_err(),
        LifecycleError::Platform(PlatformError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn fingerprints_do_not_depend_on_row_order_or_backend() {
    let site = SiteId::from_uuid(
        uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000, &[7; 10]).into_uuid(),
    );
    let mut prints = Vec::new();
    for backend in testing::backends() {
        for order in [[0, 1, 2, 3], [3, 1, 0, 2]] {
            let Fixture {
                lifecycle,
                _store: _guard,
                ..
            } = fixture(backend).await;
            let tenant = lifecycle.register(site).await.unwrap();
            let mut tx = tenant.begin().await.unwrap();
            for index in order {
                tx.insert(
                    "notes",
                    &[
                        ("note_id", Value::from(format!("n{index}"))),
                        ("title", Value::from(format!("Note {index}"))),
                        ("size", Value::from(index)),
                    ],
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
            prints.push((backend, fingerprint(&lifecycle, site).await));
        }
    }
    assert!(
        prints.windows(2).all(|pair| pair[0].1 == pair[1].1),
        "the same rows fingerprint the same in any order, on any backend: {prints:?}"
    );
    let Fixture {
        lifecycle,
        _store: _guard,
        ..
    } = fixture(Backend::Sqlite).await;
    let tenant = lifecycle.register(site).await.unwrap();
    let mut tx = tenant.begin().await.unwrap();
    for index in 0..4 {
        let size = if index == 2 { 99 } else { index };
        tx.insert(
            "notes",
            &[
                ("note_id", Value::from(format!("n{index}"))),
                ("title", Value::from(format!("Note {index}"))),
                ("size", Value::from(size)),
            ],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    assert_ne!(
        fingerprint(&lifecycle, site).await,
        prints[0].1,
        "one changed value shows"
    );
}

#[tokio::test]
async fn fingerprints_are_cached_until_the_rows_change() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            _store: _guard,
            ..
        } = fixture(backend).await;
        let site = SiteId::new();
        let tenant = lifecycle.register(site).await.unwrap();
        populate(&tenant, 4, None).await;
        let first = fingerprint(&lifecycle, site).await;

        // A write behind the machinery's back is not seen: proof the summary is cached
        // (and why every write must go through a TenantTx).
        sqlx::query("UPDATE notes SET size = 999 WHERE site_id = $1")
            .bind(site.to_string())
            .execute(lifecycle.store().pool())
            .await
            .unwrap();
        assert_eq!(
            fingerprint(&lifecycle, site).await,
            first,
            "{backend:?}: served from the cache"
        );

        lifecycle
            .soft_delete(&request(vec![Target::Site(site)]))
            .await
            .unwrap();
        assert_eq!(
            fingerprint(&lifecycle, site).await,
            first,
            "a site-level delete changes no row"
        );

        assert!(lifecycle.live(site).await.is_err());
        let mut tx = lifecycle
            .register(SiteId::new())
            .await
            .unwrap()
            .begin()
            .await
            .unwrap();
        tx.insert(
            "notes",
            &[
                ("note_id", Value::from("elsewhere")),
                ("title", Value::from("other site")),
                ("size", Value::from(1)),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            fingerprint(&lifecycle, site).await,
            first,
            "another site's write leaves it cached"
        );

        let other = SiteId::new();
        let active = lifecycle.register(other).await.unwrap();
        populate(&active, 2, None).await;
        let before = fingerprint(&lifecycle, other).await;
        let mut tx = active.begin().await.unwrap();
        tx.update(
            "notes",
            &format!("note-{other}-0"),
            &[("title", Value::from("changed"))],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_ne!(
            fingerprint(&lifecycle, other).await,
            before,
            "a write through a TenantTx is seen at once"
        );
    }
}

/// `(note_id, app_id, title, size, deleted_by, deleted_at)` of a note.
type NoteRow = (
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<i64>,
);
/// `(tag_id, note_id, label, deleted_by, deleted_at)` of a tag.
type TagRow = (String, String, String, Option<String>, Option<i64>);

/// Every row of `site` in both tables, deletion columns included, in key order.
async fn rows_of(lifecycle: &Lifecycle, site: SiteId) -> Vec<String> {
    let pool = lifecycle.store().pool();
    let notes: Vec<NoteRow> = sqlx::query_as(
        "SELECT note_id, app_id, title, size, deleted_by, deleted_at FROM notes
         WHERE site_id = $1 ORDER BY note_id",
    )
    .bind(site.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    let tags: Vec<TagRow> = sqlx::query_as(
        "SELECT tag_id, note_id, label, deleted_by, deleted_at FROM tags
         WHERE site_id = $1 ORDER BY tag_id",
    )
    .bind(site.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    notes
        .iter()
        .map(|row| format!("{row:?}"))
        .chain(tags.iter().map(|row| format!("{row:?}")))
        .collect()
}

/// (change-log entries, mark records) of `site`.
async fn log_sizes(lifecycle: &Lifecycle, site: SiteId) -> (i64, i64) {
    let pool = lifecycle.store().pool();
    let count = |table: &'static str| {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE site_id = $1"
        )))
        .bind(site.to_string())
        .fetch_one(pool)
    };
    (
        count("tenant_changes").await.unwrap(),
        count("tenant_marks").await.unwrap(),
    )
}

/// The site at one instant: when, its rows, its fingerprint and the app's description.
struct Moment {
    at: i64,
    rows: Vec<String>,
    fingerprint: String,
    app: TargetOutcome,
}

async fn moment(lifecycle: &Lifecycle, clock: &TestClock, site: SiteId, app: Target) -> Moment {
    let taken = Moment {
        at: lifecycle.now(),
        rows: rows_of(lifecycle, site).await,
        fingerprint: fingerprint(lifecycle, site).await,
        app: describe(lifecycle, app).await,
    };
    clock.advance(Duration::from_secs(60));
    taken
}

#[tokio::test]
async fn point_in_time_restore_is_exact_across_a_mark_and_an_unmark() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            clock,
            _store: _guard,
        } = fixture(backend).await;
        let (site, neighbour) = (SiteId::new(), SiteId::new());
        let (app, other_app) = (AppInstallationId::new(), AppInstallationId::new());
        let app_target = Target::AppInstallation {
            site_id: site,
            app_installation_id: app,
        };
        let other_target = Target::AppInstallation {
            site_id: site,
            app_installation_id: other_app,
        };
        let tenant = lifecycle.register(site).await.unwrap();
        let notes = populate(&tenant, 12, Some(app)).await;
        let neighbours = lifecycle.register(neighbour).await.unwrap();
        populate(&neighbours, 6, Some(app)).await;
        let mut tx = tenant.begin().await.unwrap();
        for index in 0..3 {
            tx.insert(
                "notes",
                &[
                    ("note_id", Value::from(format!("other-{index}"))),
                    ("app_id", Value::from(other_app.to_string())),
                    ("title", Value::from("Other")),
                    ("size", Value::from(index)),
                ],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let neighbour_rows = rows_of(&lifecycle, neighbour).await;
        let t0 = moment(&lifecycle, &clock, site, app_target).await;

        let mut tx = tenant.begin().await.unwrap();
        tx.update("notes", &notes[0], &[("title", Value::from("edited"))])
            .await
            .unwrap();
        tx.update("notes", &notes[1], &[("size", Value::from(-5))])
            .await
            .unwrap();
        tx.trash("notes", &notes[3], "usr_someone").await.unwrap();
        tx.commit().await.unwrap();
        let t1 = moment(&lifecycle, &clock, site, app_target).await;

        let logged_before_mark = log_sizes(&lifecycle, site).await;
        let uninstall = request(vec![app_target, other_target]);
        let deleted = lifecycle.soft_delete(&uninstall).await.unwrap();
        assert_eq!(
            deleted[0].rows_affected, 3,
            "notes 0, 6 and 9; 3 was trashed"
        );
        assert_eq!(deleted[1].rows_affected, 3);
        assert_eq!(
            log_sizes(&lifecycle, site).await,
            (logged_before_mark.0, logged_before_mark.1 + 2),
            "the mark is one record per target and owned table, no row image"
        );
        let t2 = moment(&lifecycle, &clock, site, app_target).await;
        assert_eq!(t2.app.state, TenantState::Deleted, "{backend:?}");

        // While marked: a marked row removed for good, an unowned row edited, and a new
        // row of the other app, whose unmark then has to log its rows.
        let mut tx = tenant.begin().await.unwrap();
        assert_eq!(tx.delete("notes", &notes[6]).await.unwrap(), 1);
        tx.update(
            "notes",
            &notes[2],
            &[("title", Value::from("while marked"))],
        )
        .await
        .unwrap();
        tx.insert(
            "notes",
            &[
                ("note_id", Value::from("other-late")),
                ("app_id", Value::from(other_app.to_string())),
                ("title", Value::from("Late")),
                ("size", Value::from(7)),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let t3 = moment(&lifecycle, &clock, site, app_target).await;

        let logged_before_unmark = log_sizes(&lifecycle, site).await;
        let restored = lifecycle
            .restore(
                &request(vec![app_target, other_target]),
                RestoreSource::Operation(uninstall.operation_id),
            )
            .await
            .unwrap();
        assert_eq!(restored[0].rows_affected, 2, "notes 0 and 9");
        assert_eq!(restored[1].rows_affected, 3);
        assert_eq!(
            log_sizes(&lifecycle, site).await,
            (logged_before_unmark.0 + 3, logged_before_unmark.1 + 1),
            "the app's unmark is a record; the other app had a live row, so its 3 revived rows are logged"
        );
        let t4 = moment(&lifecycle, &clock, site, app_target).await;
        assert_eq!(t4.app.state, TenantState::Active);

        let mut tx = tenant.begin().await.unwrap();
        tx.update("notes", &notes[9], &[("title", Value::from("after"))])
            .await
            .unwrap();
        tx.trash("notes", &notes[0], "usr_other").await.unwrap();
        tx.commit().await.unwrap();
        let t5 = moment(&lifecycle, &clock, site, app_target).await;

        let moments = [&t0, &t1, &t2, &t3, &t4, &t5];
        for (index, &step) in [2, 4, 0, 3, 1, 5, 2].iter().enumerate() {
            let expected = moments[step];
            let outcome = lifecycle
                .restore(
                    &request(vec![Target::Site(site)]),
                    RestoreSource::PointInTime(expected.at),
                )
                .await
                .unwrap()
                .remove(0);
            let context = format!("{backend:?}, restore #{index} to t{step}");
            assert_eq!(rows_of(&lifecycle, site).await, expected.rows, "{context}");
            assert_eq!(outcome.fingerprint, expected.fingerprint, "{context}");
            let app_now = describe(&lifecycle, app_target).await;
            assert_eq!(app_now.fingerprint, expected.app.fingerprint, "{context}");
            assert_eq!(app_now.counts, expected.app.counts, "{context}");
            assert_eq!(app_now.state, expected.app.state, "{context}");
            assert_eq!(
                rows_of(&lifecycle, neighbour).await,
                neighbour_rows,
                "{context}"
            );
            clock.advance(Duration::from_secs(60));
        }
    }
}

#[tokio::test]
async fn mark_records_go_with_their_rows_and_with_history() {
    for backend in testing::backends() {
        let Fixture {
            lifecycle,
            clock,
            _store: _guard,
        } = fixture(backend).await;
        let (purged_site, kept_site) = (SiteId::new(), SiteId::new());
        let app = AppInstallationId::new();
        let purged_app = Target::AppInstallation {
            site_id: purged_site,
            app_installation_id: app,
        };
        let kept_app = Target::AppInstallation {
            site_id: kept_site,
            app_installation_id: app,
        };
        populate(
            &lifecycle.register(purged_site).await.unwrap(),
            6,
            Some(app),
        )
        .await;
        populate(&lifecycle.register(kept_site).await.unwrap(), 6, Some(app)).await;
        lifecycle
            .soft_delete(&request(vec![purged_app]))
            .await
            .unwrap();
        let uninstall = request(vec![kept_app]);
        lifecycle.soft_delete(&uninstall).await.unwrap();
        lifecycle
            .restore(
                &request(vec![kept_app]),
                RestoreSource::Operation(uninstall.operation_id),
            )
            .await
            .unwrap();
        assert_eq!(log_sizes(&lifecycle, purged_site).await.1, 1, "{backend:?}");
        assert_eq!(
            log_sizes(&lifecycle, kept_site).await.1,
            2,
            "a mark and its unmark"
        );

        clock.advance(31 * DAY);
        let purged = lifecycle
            .purge(&request(vec![purged_app]))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(purged.rows_affected, 2, "notes 0 and 3");
        assert_eq!(
            log_sizes(&lifecycle, purged_site).await.1,
            0,
            "the purged rows' mark goes with them"
        );
        assert_eq!(log_sizes(&lifecycle, kept_site).await.1, 2);

        assert!(lifecycle.prune_history().await.unwrap() >= 2);
        assert_eq!(
            log_sizes(&lifecycle, kept_site).await,
            (0, 0),
            "marks past retention are pruned with the change log"
        );
    }
}
