//! The lifecycle contract (`micros.lifecycle.v1.TenantLifecycle`), tested once for every
//! service that serves it: [`check`] drives a service through soft delete, restore by
//! operation and to a point in time, app uninstall, purge, hold, idempotency,
//! `validate_only`, audit and deleted-site unreachability, given a [`Subject`] that
//! says how to seed, change and look at a site through that service's own domain API.
//!
//! What only one service has (the catalog's tombstone, identity's contact escrow,
//! media's blob files, product-data's shards) stays in that service's tests, which
//! call the service's lifecycle through [`Lifecycle`].

use std::{fmt::Display, future::Future, time::Duration};

use micros_proto::lifecycle::v1::{
    AppInstallationTarget, DescribeRequest, Justification, PurgeRequest, RestoreRequest,
    SetHoldRequest, SiteTarget, SoftDeleteRequest, Target, TargetOutcome, TenantState,
    restore_request::Source, target::Kind, tenant_lifecycle_client::TenantLifecycleClient,
};
use tonic::{Code, Status};

use super::{TestService, refused, wrong_kind};
use crate::{
    auth::{ORCHESTRATOR, Role},
    client::ServiceChannel,
    clock::Clock,
    ids::{AppInstallationId, OperationId, SiteId},
    service::MicrosService,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The retention every service keeps by default: delete time to expire time.
const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The justification of every call the kit makes, which the audit must record.
const REASON: &str = "lifecycle contract test";
const TICKET: &str = "INC-2022-04";

/// A site target; `site_id` is any text, so a test can pass the wrong kind of ID.
pub fn site_target(site_id: impl Display) -> Target {
    Target {
        kind: Some(Kind::Site(SiteTarget {
            site_id: site_id.to_string(),
        })),
    }
}

/// An app-installation target on a site; any text, so a test can pass the wrong kind.
pub fn app_target(site_id: impl Display, app_installation_id: impl Display) -> Target {
    Target {
        kind: Some(Kind::AppInstallation(AppInstallationTarget {
            site_id: site_id.to_string(),
            app_installation_id: app_installation_id.to_string(),
        })),
    }
}

/// The reason and ticket every destructive call needs.
pub fn justification() -> Option<Justification> {
    Some(Justification {
        reason: REASON.to_owned(),
        ticket: TICKET.to_owned(),
    })
}

/// (live, deleted) rows of `table` in an outcome.
#[track_caller]
pub fn rows(outcome: &TargetOutcome, table: &str) -> (i64, i64) {
    let count = outcome
        .counts
        .iter()
        .find(|count| count.table == table)
        .unwrap_or_else(|| panic!("a count for {table} in {:?}", outcome.counts));
    (count.live, count.deleted)
}

/// The orchestrator's side of a service's `TenantLifecycle`: every call with a
/// justification and a fresh operation unless one is given.
pub struct Lifecycle {
    /// The raw client, for requests the helpers do not build (a grant in metadata).
    pub client: TenantLifecycleClient<ServiceChannel>,
}

impl Lifecycle {
    /// Calls `service` with the orchestrator's lifecycle token.
    pub fn of<S: MicrosService>(service: &TestService<S>) -> Self {
        Self::with_roles(service, &[Role::Lifecycle])
    }

    /// Calls `service` with a token holding only `roles` (to be refused without the
    /// lifecycle role).
    pub fn with_roles<S: MicrosService>(service: &TestService<S>, roles: &[Role]) -> Self {
        Self {
            client: TenantLifecycleClient::new(service.channel(roles)),
        }
    }

    pub async fn try_describe(
        &mut self,
        targets: Vec<Target>,
    ) -> Result<Vec<TargetOutcome>, Status> {
        self.client
            .describe(DescribeRequest { targets })
            .await
            .map(|response| response.into_inner().outcomes)
    }

    pub async fn describe(&mut self, target: Target) -> TargetOutcome {
        self.try_describe(vec![target]).await.unwrap().remove(0)
    }

    pub async fn fingerprint(&mut self, site_id: SiteId) -> String {
        self.describe(site_target(site_id)).await.fingerprint
    }

    pub async fn try_soft_delete(
        &mut self,
        targets: Vec<Target>,
        operation: OperationId,
    ) -> Result<Vec<TargetOutcome>, Status> {
        self.client
            .soft_delete(soft_delete_request(targets, operation))
            .await
            .map(|response| response.into_inner().outcomes)
    }

    pub async fn soft_delete(&mut self, target: Target, operation: OperationId) -> TargetOutcome {
        self.try_soft_delete(vec![target], operation)
            .await
            .unwrap()
            .remove(0)
    }

    /// Restores `targets` from `source` as a new operation.
    pub async fn try_restore(
        &mut self,
        targets: Vec<Target>,
        source: Source,
    ) -> Result<Vec<TargetOutcome>, Status> {
        self.client
            .restore(restore_request(targets, OperationId::new(), source))
            .await
            .map(|response| response.into_inner().outcomes)
    }

    pub async fn restore(&mut self, target: Target, source: Source) -> TargetOutcome {
        self.try_restore(vec![target], source)
            .await
            .unwrap()
            .remove(0)
    }

    pub async fn try_purge(
        &mut self,
        target: Target,
        operation: OperationId,
    ) -> Result<TargetOutcome, Status> {
        self.client
            .purge(purge_request(target, operation))
            .await
            .map(|response| response.into_inner().outcomes.remove(0))
    }

    pub async fn purge(&mut self, target: Target, operation: OperationId) -> TargetOutcome {
        self.try_purge(target, operation).await.unwrap()
    }

    pub async fn set_hold(&mut self, target: Target, hold: bool) -> TargetOutcome {
        self.client
            .set_hold(SetHoldRequest {
                targets: vec![target],
                hold,
                operation_id: OperationId::new().to_string(),
                justification: justification(),
                lease_token: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0)
    }
}

fn soft_delete_request(targets: Vec<Target>, operation: OperationId) -> SoftDeleteRequest {
    SoftDeleteRequest {
        targets,
        operation_id: operation.to_string(),
        justification: justification(),
        validate_only: false,
        lease_token: 0,
        call_key: String::new(),
    }
}

fn restore_request(targets: Vec<Target>, operation: OperationId, source: Source) -> RestoreRequest {
    RestoreRequest {
        targets,
        operation_id: operation.to_string(),
        source: Some(source),
        justification: justification(),
        validate_only: false,
        lease_token: 0,
        call_key: String::new(),
    }
}

fn purge_request(target: Target, operation: OperationId) -> PurgeRequest {
    PurgeRequest {
        targets: vec![target],
        operation_id: operation.to_string(),
        justification: justification(),
        validate_only: false,
        lease_token: 0,
    }
}

/// What the kit needs to know of a service: how a user puts data on a site, changes it
/// and sees it, through the service's own domain API.
pub trait Subject {
    type Service: MicrosService;
    /// What a user sees of a site (listings, contents), compared before a deletion and
    /// after its restore: the same means nothing was lost and nothing came back.
    type View: std::fmt::Debug + PartialEq;

    fn service(&self) -> &TestService<Self::Service>;

    /// A new site this service may take data for, with none yet.
    fn site(&mut self) -> impl Future<Output = SiteId>;

    /// Writes a site's data and, where users can delete, one row a user deleted (which
    /// must stay deleted through every restore).
    fn seed(&mut self, site_id: SiteId) -> impl Future<Output = ()>;

    /// A later batch of writes that updates, deletes and adds rows (a bad script): what a
    /// restore to a point in time before it undoes.
    fn change(&mut self, site_id: SiteId) -> impl Future<Output = ()>;

    /// The site as a user sees it; asked only while the site is active.
    fn view(&mut self, site_id: SiteId) -> impl Future<Output = Self::View>;

    /// Every domain call on the site, reads and writes, each made and its refusal
    /// returned (a call that succeeds fails the test: a deleted site is unreachable).
    fn refusals(&mut self, site_id: SiteId) -> impl Future<Output = Vec<Status>>;

    /// Writes rows owned by a new app installation on the site and returns its ID; `None`
    /// for a service that keeps no rows an app owns.
    fn seed_app(&mut self, site_id: SiteId) -> impl Future<Output = Option<String>>;
}

/// Runs the whole lifecycle contract against `subject`, on two sites of its own, one of
/// them a neighbour that every step must leave as it was.
pub async fn check<T: Subject>(subject: &mut T) {
    let mut lifecycle = Lifecycle::of(subject.service());
    let (site, neighbour) = (subject.site().await, subject.site().await);
    subject.seed(site).await;
    subject.seed(neighbour).await;
    assert_ne!(
        lifecycle.fingerprint(site).await,
        lifecycle.fingerprint(neighbour).await,
        "{}: a fingerprint tells sites apart",
        name::<T>()
    );
    let mut sites = Sites {
        site,
        neighbour,
        neighbour_before: Snapshot::take(subject, &mut lifecycle, neighbour).await,
    };

    only_the_lifecycle_role_may_call(subject, &mut lifecycle, &sites).await;
    wrong_id_kinds_are_refused(subject, &mut lifecycle, &sites).await;
    soft_delete_hides_and_restore_brings_back(subject, &mut lifecycle, &sites).await;
    if let Some(app) = subject.seed_app(site).await {
        app_uninstall_hides_only_its_rows(subject, &mut lifecycle, &sites, &app).await;
    }
    point_in_time_restore_returns_to_t(subject, &mut lifecycle, &mut sites).await;
    purge_waits_for_expiry_and_hold(subject, &mut lifecycle, &sites).await;
}

struct Sites<V> {
    site: SiteId,
    neighbour: SiteId,
    /// The neighbour as it must still be.
    neighbour_before: Snapshot<V>,
}

/// A site as the lifecycle describes it and as a user sees it.
#[derive(Debug, PartialEq)]
struct Snapshot<V> {
    described: TargetOutcome,
    view: V,
}

impl<V: std::fmt::Debug + PartialEq> Snapshot<V> {
    async fn take<T: Subject<View = V>>(
        subject: &mut T,
        lifecycle: &mut Lifecycle,
        site_id: SiteId,
    ) -> Self {
        Self {
            described: lifecycle.describe(site_target(site_id)).await,
            view: subject.view(site_id).await,
        }
    }
}

impl<V: std::fmt::Debug + PartialEq> Sites<V> {
    async fn neighbour_untouched<T: Subject<View = V>>(
        &self,
        subject: &mut T,
        lifecycle: &mut Lifecycle,
        step: &str,
    ) {
        let now = Snapshot::take(subject, lifecycle, self.neighbour).await;
        assert_eq!(
            now, self.neighbour_before,
            "{step}: the neighbour is untouched"
        );
    }
}

fn name<T: Subject>() -> &'static str {
    T::Service::DESCRIPTOR.name
}

/// Only the orchestrator's lifecycle role may call; a refused call changes nothing.
async fn only_the_lifecycle_role_may_call<T: Subject>(
    subject: &mut T,
    lifecycle: &mut Lifecycle,
    sites: &Sites<T::View>,
) {
    let before = Snapshot::take(subject, lifecycle, sites.site).await;
    let mut admin = Lifecycle::with_roles(subject.service(), &[Role::Admin, Role::Operator]);
    let status = admin
        .try_describe(vec![site_target(sites.site)])
        .await
        .unwrap_err();
    let info = refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    assert_eq!(
        info.metadata["required_role"],
        "lifecycle",
        "{}",
        name::<T>()
    );
    let status = admin
        .try_soft_delete(vec![site_target(sites.site)], OperationId::new())
        .await
        .unwrap_err();
    refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    assert_eq!(
        Snapshot::take(subject, lifecycle, sites.site).await,
        before,
        "{}: the refused delete deleted nothing",
        name::<T>()
    );
    assert_eq!(before.described.state, TenantState::Active as i32);
}

/// A site ID where an app installation belongs, and the reverse, is INVALID_ARGUMENT
/// naming both kinds; nothing changes.
async fn wrong_id_kinds_are_refused<T: Subject>(
    subject: &mut T,
    lifecycle: &mut Lifecycle,
    sites: &Sites<T::View>,
) {
    let before = Snapshot::take(subject, lifecycle, sites.site).await;
    let app = AppInstallationId::new();
    for (target, expected, actual) in [
        (site_target(app), "site", "app"),
        (app_target(sites.site, sites.site), "app", "site"),
    ] {
        let status = lifecycle
            .try_soft_delete(vec![target], OperationId::new())
            .await
            .unwrap_err();
        assert_eq!(
            wrong_kind(&status),
            (expected.to_owned(), actual.to_owned()),
            "{}",
            name::<T>()
        );
    }
    assert_eq!(Snapshot::take(subject, lifecycle, sites.site).await, before);
}

/// Soft delete flips the site (no data row touched) and makes it unreachable; restore by
/// operation brings back exactly what was there; `validate_only` changes nothing; a
/// repeated operation is answered from its record; each applied call is audited.
async fn soft_delete_hides_and_restore_brings_back<T: Subject>(
    subject: &mut T,
    lifecycle: &mut Lifecycle,
    sites: &Sites<T::View>,
) {
    let service = name::<T>();
    let site = sites.site;
    let before = Snapshot::take(subject, lifecycle, site).await;
    assert_eq!(
        before.described.state,
        TenantState::Active as i32,
        "{service}"
    );

    let mut dry = soft_delete_request(vec![site_target(site)], OperationId::new());
    dry.validate_only = true;
    let dry_operation = dry.operation_id.clone();
    let predicted = lifecycle
        .client
        .soft_delete(dry)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(predicted.outcomes[0].state, TenantState::Deleted as i32);
    assert_eq!(
        Snapshot::take(subject, lifecycle, site).await,
        before,
        "{service}: validate_only deletes nothing"
    );
    assert_eq!(subject.service().audit(&dry_operation).await, Vec::new());

    let delete = OperationId::new();
    let deleted = lifecycle.soft_delete(site_target(site), delete).await;
    assert_eq!(deleted.state, TenantState::Deleted as i32, "{service}");
    assert_eq!(
        deleted.fingerprint, before.described.fingerprint,
        "{service}: what was deleted"
    );
    assert_eq!(
        deleted.rows_affected, 0,
        "a site-level delete touches no row"
    );
    let (delete_time, expire_time) = (deleted.delete_time.unwrap(), deleted.expire_time.unwrap());
    assert_eq!(
        expire_time.seconds - delete_time.seconds,
        i64::try_from(RETENTION.as_secs()).unwrap()
    );
    let again = lifecycle.soft_delete(site_target(site), delete).await;
    assert_eq!(
        again, deleted,
        "{service}: the same operation again answers the same"
    );

    let during = lifecycle.describe(site_target(site)).await;
    assert_eq!(during.state, TenantState::Deleted as i32);
    assert_eq!(
        (&during.fingerprint, &during.counts),
        (&before.described.fingerprint, &before.described.counts),
        "{service}: no data row was touched"
    );
    assert_unreachable(subject, site).await;
    sites
        .neighbour_untouched(subject, lifecycle, "soft delete")
        .await;
    assert_audited(subject, delete, "soft_delete", site_target(site)).await;

    let status = lifecycle
        .client
        .restore(restore_request(
            vec![site_target(site)],
            delete,
            Source::UndoOperationId(delete.to_string()),
        ))
        .await
        .unwrap_err();
    refused(&status, Code::AlreadyExists, "OPERATION_ID_REUSED");
    let mut dry = restore_request(
        vec![site_target(site)],
        OperationId::new(),
        Source::UndoOperationId(delete.to_string()),
    );
    dry.validate_only = true;
    let predicted = lifecycle.client.restore(dry).await.unwrap().into_inner();
    assert_eq!(predicted.outcomes[0].state, TenantState::Active as i32);
    assert_eq!(
        lifecycle.describe(site_target(site)).await.state,
        TenantState::Deleted as i32,
        "{service}: validate_only restores nothing"
    );

    let restore = OperationId::new();
    let request = restore_request(
        vec![site_target(site)],
        restore,
        Source::UndoOperationId(delete.to_string()),
    );
    let restored = lifecycle
        .client
        .restore(request.clone())
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .remove(0);
    assert_eq!(restored.state, TenantState::Active as i32, "{service}");
    assert_eq!(restored.fingerprint, before.described.fingerprint);
    assert_eq!(
        Snapshot::take(subject, lifecycle, site).await,
        before,
        "{service}: restored with the same IDs, rows deleted before stay deleted"
    );
    let again = lifecycle
        .client
        .restore(request)
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .remove(0);
    assert_eq!(
        (again.state, again.rows_affected),
        (TenantState::Active as i32, 0),
        "{service}: the same restore again is a no-op"
    );
    assert_audited(subject, restore, "restore", site_target(site)).await;
    sites
        .neighbour_untouched(subject, lifecycle, "restore")
        .await;
}

/// Uninstalling an app hides only the rows it owns and leaves the site active; restoring
/// the uninstall brings them back.
async fn app_uninstall_hides_only_its_rows<T: Subject>(
    subject: &mut T,
    lifecycle: &mut Lifecycle,
    sites: &Sites<T::View>,
    app: &str,
) {
    let service = name::<T>();
    let site = sites.site;
    let before = Snapshot::take(subject, lifecycle, site).await;
    let app_before = lifecycle.describe(app_target(site, app)).await;
    let owned: i64 = app_before.counts.iter().map(|count| count.live).sum();
    assert!(owned > 0, "{service}: the app owns rows: {app_before:?}");

    let uninstall = OperationId::new();
    let uninstalled = lifecycle
        .soft_delete(app_target(site, app), uninstall)
        .await;
    assert_eq!(
        uninstalled.rows_affected, owned,
        "{service}: the app's rows"
    );
    assert_eq!(
        uninstalled
            .counts
            .iter()
            .map(|count| (count.live, count.deleted))
            .fold((0, 0), |(live, deleted), (l, d)| (live + l, deleted + d)),
        (0, owned),
        "{service}: marked deleted, not removed"
    );
    let after = Snapshot::take(subject, lifecycle, site).await;
    assert_eq!(after.described.state, TenantState::Active as i32);
    assert_ne!(after.described.fingerprint, before.described.fingerprint);
    assert_ne!(
        after.view, before.view,
        "{service}: the app's rows are hidden"
    );
    assert_audited(subject, uninstall, "soft_delete", app_target(site, app)).await;

    let restored = lifecycle
        .restore(
            app_target(site, app),
            Source::UndoOperationId(uninstall.to_string()),
        )
        .await;
    assert_eq!(restored.counts, app_before.counts, "{service}");
    assert_eq!(Snapshot::take(subject, lifecycle, site).await, before);
    sites
        .neighbour_untouched(subject, lifecycle, "app uninstall")
        .await;
}

/// A restore to T undoes every change made to the site after T, and none made to its
/// neighbour. The test clock moves a second before and after T, so no write shares its
/// instant, instead of the test sleeping around it.
async fn point_in_time_restore_returns_to_t<T: Subject>(
    subject: &mut T,
    lifecycle: &mut Lifecycle,
    sites: &mut Sites<T::View>,
) {
    let service = name::<T>();
    let site = sites.site;
    let at_t = Snapshot::take(subject, lifecycle, site).await;
    let clock = subject.service().clock.clone();
    clock.advance(Duration::from_secs(1));
    let t = clock.now();
    clock.advance(Duration::from_secs(1));

    subject.change(site).await;
    subject.change(sites.neighbour).await;
    assert_ne!(
        lifecycle.fingerprint(site).await,
        at_t.described.fingerprint,
        "{service}: the change changed the site"
    );
    sites.neighbour_before = Snapshot::take(subject, lifecycle, sites.neighbour).await;

    let restored = lifecycle
        .restore(site_target(site), Source::PointInTime(t.into()))
        .await;
    assert_eq!(restored.state, TenantState::Active as i32, "{service}");
    assert_eq!(
        (&restored.fingerprint, &restored.counts),
        (&at_t.described.fingerprint, &at_t.described.counts),
        "{service}"
    );
    assert_eq!(Snapshot::take(subject, lifecycle, site).await, at_t);
    sites
        .neighbour_untouched(
            subject,
            lifecycle,
            "point in time: it keeps its change after T",
        )
        .await;
}

/// Purge is refused before expiry and while a hold is set; under `validate_only` it says
/// it would go ahead and answers the site as it is; then it removes every row once and
/// the site stays unreachable.
async fn purge_waits_for_expiry_and_hold<T: Subject>(
    subject: &mut T,
    lifecycle: &mut Lifecycle,
    sites: &Sites<T::View>,
) {
    let service = name::<T>();
    let site = sites.site;
    let deleted = lifecycle
        .soft_delete(site_target(site), OperationId::new())
        .await;
    let rows: i64 = deleted
        .counts
        .iter()
        .map(|count| count.live + count.deleted)
        .sum();
    let kept = |outcome: &TargetOutcome| {
        assert_eq!(outcome.state, TenantState::Deleted as i32, "{service}");
        assert_eq!(outcome.counts, deleted.counts, "{service}: nothing purged");
    };

    let early = OperationId::new();
    let status = lifecycle
        .try_purge(site_target(site), early)
        .await
        .unwrap_err();
    let info = refused(&status, Code::FailedPrecondition, "PURGE_BEFORE_EXPIRY");
    assert!(info.metadata.contains_key("expire_time"), "{info:?}");
    kept(&lifecycle.describe(site_target(site)).await);
    let audit = subject.service().audit(&early.to_string()).await;
    assert!(
        audit
            .iter()
            .any(|entry| entry.outcome == "refused: PURGE_BEFORE_EXPIRY"),
        "{service}: the refusal is audited: {audit:?}"
    );

    let held = lifecycle.set_hold(site_target(site), true).await;
    assert!(held.hold, "{service}");
    subject.service().clock.advance(RETENTION + DAY);
    let status = lifecycle
        .try_purge(site_target(site), OperationId::new())
        .await
        .unwrap_err();
    refused(&status, Code::FailedPrecondition, "TENANT_ON_HOLD");
    kept(&lifecycle.describe(site_target(site)).await);
    let released = lifecycle.set_hold(site_target(site), false).await;
    assert!(!released.hold, "{service}");

    let mut dry = purge_request(site_target(site), OperationId::new());
    dry.validate_only = true;
    let allowed = lifecycle.client.purge(dry).await.unwrap().into_inner();
    kept(&allowed.outcomes[0]);
    kept(&lifecycle.describe(site_target(site)).await);

    let purge = OperationId::new();
    let purged = lifecycle.purge(site_target(site), purge).await;
    assert_eq!(purged.state, TenantState::Purged as i32, "{service}");
    assert_eq!(purged.rows_affected, rows, "{service}: every row, once");
    let after = lifecycle.describe(site_target(site)).await;
    assert_eq!(after.state, TenantState::Purged as i32);
    assert!(
        after
            .counts
            .iter()
            .all(|count| count.live == 0 && count.deleted == 0),
        "{service}: the rows are gone: {:?}",
        after.counts
    );
    let again = lifecycle.purge(site_target(site), purge).await;
    assert_eq!(
        (again.state, again.rows_affected),
        (TenantState::Purged as i32, 0),
        "{service}: the same purge again is a no-op"
    );
    assert_audited(subject, purge, "purge", site_target(site)).await;
    assert_unreachable(subject, site).await;
    sites.neighbour_untouched(subject, lifecycle, "purge").await;
}

/// Every domain call on the site answers NOT_FOUND, SITE_DELETED, naming the site.
async fn assert_unreachable<T: Subject>(subject: &mut T, site_id: SiteId) {
    let refusals = subject.refusals(site_id).await;
    assert!(
        !refusals.is_empty(),
        "{}: no domain call given",
        name::<T>()
    );
    for status in refusals {
        let info = refused(&status, Code::NotFound, "SITE_DELETED");
        assert_eq!(
            info.metadata["site_id"],
            site_id.to_string(),
            "{}",
            name::<T>()
        );
    }
}

/// The operation's one applied call is in the audit with who asked and why.
async fn assert_audited<T: Subject>(
    subject: &T,
    operation: OperationId,
    action: &str,
    target: Target,
) {
    let audit = subject.service().audit(&operation.to_string()).await;
    let target = match target.kind {
        Some(Kind::Site(site)) => site.site_id,
        Some(Kind::AppInstallation(app)) => {
            format!("{}:{}", app.site_id, app.app_installation_id)
        }
        None => unreachable!("the kit names every target"),
    };
    let applied: Vec<_> = audit
        .iter()
        .map(|entry| {
            (
                entry.action.as_str(),
                entry.outcome.as_str(),
                entry.targets.clone(),
                entry.principal.as_str(),
                entry.reason.as_str(),
                entry.ticket.as_str(),
            )
        })
        .collect();
    let principal = format!("service:{ORCHESTRATOR}");
    assert_eq!(
        applied,
        vec![(
            action,
            "applied",
            vec![target],
            principal.as_str(),
            REASON,
            TICKET
        )],
        "{}: audited once, a repeat is answered from the record",
        name::<T>()
    );
}
