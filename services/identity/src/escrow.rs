//! The contact escrow: every site's admin, billing and technical contacts, kept outside
//! the site's lifecycle so that support can reach a customer whose site is deleted — or
//! purged — without knowing the site's ID or URL (in April 2022 the deleted sites took
//! their admins' contacts with them, and customers could not even open a ticket).
//!
//! Its tables are not declared to the lifecycle machinery, so no soft delete, restore or
//! purge of a site touches them. They have a retention rule of their own: a site's
//! contacts are removed on an explicit [`ContactEscrow::forget`], or once the escrow
//! retention has passed since the site was purged. The purge time is stamped by
//! [`EscrowHooks::after_purge`] and, should that have been missed (the hook runs after the
//! purge committed, and a replayed purge does not run it again), caught up from the tenant
//! registry by [`ContactEscrow::prune`] before it removes anything.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use micros_platform::{
    clock::SharedClock,
    ids::SiteId,
    lifecycle::{LifecycleError, LifecycleHooks, TenantState},
    store::json_list,
    store::{Store, unix_micros},
};
use sqlx::{AnyConnection, Row};

use crate::{
    domain::{Contact, ContactKind, ContactSite, Email, EscrowRequest, EscrowedSite},
    error::IdentityError,
    store::{corrupt, stored_id},
};

/// Sites whose escrow one prune transaction removes.
const PRUNE_BATCH: i64 = 500;

/// Who the audit names for removals after retention.
const PRUNER: &str = "identity escrow retention";

#[derive(Debug, Clone)]
pub struct ContactEscrow {
    store: Store,
    clock: SharedClock,
    retention: Duration,
}

impl ContactEscrow {
    pub fn new(store: Store, clock: SharedClock, retention: Duration) -> Self {
        Self {
            store,
            clock,
            retention,
        }
    }

    fn now(&self) -> i64 {
        unix_micros(self.clock.now())
    }

    fn retention_micros(&self) -> i64 {
        i64::try_from(self.retention.as_micros()).unwrap_or(i64::MAX)
    }

    /// Upserts the site's name and URL and each contact by (email, kind); contacts not
    /// named stay. A purged site is refused: its escrow would never expire.
    pub async fn escrow(&self, request: &EscrowRequest) -> Result<EscrowedSite, IdentityError> {
        let site_key = request.site_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM tenant_view WHERE site_id = $1")
                .bind(site_key.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if state.as_deref() == Some("purged") {
            return Err(LifecycleError::Purged {
                site_id: request.site_id,
            }
            .into());
        }
        let now = self.now();
        sqlx::query(
            "INSERT INTO escrow_sites (site_id, site_name, site_url, escrow_time, update_time)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (site_id) DO UPDATE
             SET site_name = excluded.site_name, site_url = excluded.site_url,
                 update_time = excluded.update_time
             WHERE escrow_sites.site_name <> excluded.site_name
                OR escrow_sites.site_url <> excluded.site_url",
        )
        .bind(site_key.clone())
        .bind(request.site_name.clone())
        .bind(request.site_url.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for contact in &request.contacts {
            sqlx::query(
                "INSERT INTO escrow_contacts (site_id, email, kind, name, escrow_time, update_time)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (site_id, email, kind) DO UPDATE
                 SET name = excluded.name, update_time = excluded.update_time
                 WHERE escrow_contacts.name <> excluded.name",
            )
            .bind(site_key.clone())
            .bind(contact.email.as_str().to_owned())
            .bind(contact.kind.as_str())
            .bind(contact.name.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let escrowed = self.load(&mut tx, &[request.site_id]).await?;
        tx.commit().await?;
        escrowed.into_iter().next().ok_or_else(|| {
            LifecycleError::Misuse(format!("the escrow of {} vanished", request.site_id)).into()
        })
    }

    /// The escrow of each of `sites` that has one, in the order given.
    pub async fn escrowed(&self, sites: &[SiteId]) -> Result<Vec<EscrowedSite>, IdentityError> {
        let mut connection = self.store.pool().acquire().await?;
        self.load(&mut connection, sites).await
    }

    /// Reads the escrow of `sites` with one statement per table.
    async fn load(
        &self,
        connection: &mut AnyConnection,
        sites: &[SiteId],
    ) -> Result<Vec<EscrowedSite>, IdentityError> {
        let list = json_list(sites.iter().map(ToString::to_string));
        let in_list = self.store.json_strings("$1");
        let site_rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT site_id, site_name, site_url FROM escrow_sites WHERE site_id IN ({in_list})"
        )))
        .bind(list.clone())
        .fetch_all(&mut *connection)
        .await?;
        let mut escrowed: HashMap<String, EscrowedSite> = HashMap::new();
        for row in &site_rows {
            escrowed.insert(
                row.try_get("site_id")?,
                EscrowedSite {
                    site_id: stored_id(row, "site_id")?,
                    site_name: row.try_get("site_name")?,
                    site_url: row.try_get("site_url")?,
                    contacts: Vec::new(),
                },
            );
        }
        let contact_rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT site_id, email, kind, name FROM escrow_contacts WHERE site_id IN ({in_list})
             ORDER BY site_id, email, kind"
        )))
        .bind(list)
        .fetch_all(&mut *connection)
        .await?;
        for row in &contact_rows {
            let site_key: String = row.try_get("site_id")?;
            let kind: String = row.try_get("kind")?;
            let contact = Contact {
                email: Email::from_stored(row.try_get("email")?),
                name: row.try_get("name")?,
                kind: ContactKind::parse(&kind)
                    .ok_or_else(|| corrupt(format!("unknown contact kind {kind}")))?,
            };
            if let Some(site) = escrowed.get_mut(&site_key) {
                site.contacts.push(contact);
            }
        }
        Ok(sites
            .iter()
            .filter_map(|site_id| escrowed.remove(&site_id.to_string()))
            .collect())
    }

    /// The sites that have `email` as a contact, after site `after` in ID order, with
    /// their state from the tenant registry: no tenant handle, so deleted and purged
    /// sites are found too.
    pub async fn find_sites(
        &self,
        email: &Email,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ContactSite>, IdentityError> {
        let rows = sqlx::query(
            "SELECT s.site_id, s.site_name, s.site_url, s.purged_at, c.kind, c.name,
                    t.state, t.delete_time, t.expire_time, t.purge_time
             FROM escrow_contacts c
             JOIN escrow_sites s ON s.site_id = c.site_id
             LEFT JOIN tenant_view t ON t.site_id = c.site_id
             WHERE c.email = $1 AND c.site_id IN (
                 SELECT DISTINCT site_id FROM escrow_contacts
                 WHERE email = $1 AND site_id > $2 ORDER BY site_id LIMIT $3)
             ORDER BY c.site_id, c.kind",
        )
        .bind(email.as_str().to_owned())
        .bind(after.unwrap_or("").to_owned())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await?;
        let mut sites: BTreeMap<String, ContactSite> = BTreeMap::new();
        for row in &rows {
            let site_key: String = row.try_get("site_id")?;
            let kind: String = row.try_get("kind")?;
            let kind = ContactKind::parse(&kind)
                .ok_or_else(|| corrupt(format!("unknown contact kind {kind}")))?;
            if let Some(site) = sites.get_mut(&site_key) {
                site.kinds.push(kind);
                continue;
            }
            let state = match row.try_get::<Option<String>, _>("state")? {
                None => TenantState::Absent,
                Some(state) => TenantState::parse(&state)
                    .ok_or_else(|| corrupt(format!("unknown tenant state {state}")))?,
            };
            let purge_time: Option<i64> = row.try_get("purge_time")?;
            let purged_at = row.try_get::<Option<i64>, _>("purged_at")?.or(purge_time);
            let site = ContactSite {
                site_id: stored_id(row, "site_id")?,
                site_name: row.try_get("site_name")?,
                site_url: row.try_get("site_url")?,
                state,
                kinds: vec![kind],
                contact_name: row.try_get("name")?,
                delete_time: row.try_get("delete_time")?,
                expire_time: row.try_get("expire_time")?,
                purge_time,
                escrow_expire_time: purged_at
                    .map(|purged_at| purged_at.saturating_add(self.retention_micros())),
            };
            sites.insert(site_key, site);
        }
        Ok(sites.into_values().collect())
    }

    /// Removes the site's escrow for good and records who asked and why; returns the
    /// number of contacts removed (0 when none were left, which is recorded too).
    pub async fn forget(
        &self,
        site_id: SiteId,
        principal: &str,
        reason: &str,
    ) -> Result<u64, IdentityError> {
        let site_key = site_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let forgotten = sqlx::query("DELETE FROM escrow_contacts WHERE site_id = $1")
            .bind(site_key.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM escrow_sites WHERE site_id = $1")
            .bind(site_key.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO escrow_audit (audit_time, action, site_id, principal, reason, contacts)
             VALUES ($1, 'forget', $2, $3, $4, $5)",
        )
        .bind(self.now())
        .bind(site_key)
        .bind(principal.to_owned())
        .bind(reason.to_owned())
        .bind(i64::try_from(forgotten).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(forgotten)
    }

    /// Stamps `purged_at` (the registry's purge time) on the escrow of those of `sites`
    /// the registry says are purged; `None` means every such site not stamped yet.
    async fn stamp_purged(&self, sites: Option<&[SiteId]>) -> Result<u64, sqlx::Error> {
        let scope = match sites {
            Some(_) => format!("AND site_id IN ({})", self.store.json_strings("$1")),
            None => String::new(),
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE escrow_sites
             SET purged_at = (SELECT t.purge_time FROM tenant_view t WHERE t.site_id = escrow_sites.site_id)
             WHERE purged_at IS NULL {scope}
               AND site_id IN (SELECT site_id FROM tenant_view WHERE state = 'purged' AND purge_time IS NOT NULL)"
        )));
        let query = match sites {
            Some(sites) => query.bind(json_list(sites.iter().map(ToString::to_string))),
            None => query,
        };
        Ok(query.execute(self.store.pool()).await?.rows_affected())
    }

    /// Removes the escrow of sites purged longer than the retention ago (by the service
    /// clock), in bounded batches, each recorded in the audit; returns the contacts
    /// removed.
    pub async fn prune(&self) -> Result<u64, IdentityError> {
        let caught_up = self.stamp_purged(None).await?;
        if caught_up > 0 {
            tracing::warn!(
                sites = caught_up,
                "stamped the purge time of escrowed sites whose purge hook did not run"
            );
        }
        let cutoff = self.now().saturating_sub(self.retention_micros());
        let expired = format!(
            "SELECT site_id FROM escrow_sites WHERE purged_at IS NOT NULL AND purged_at < $1
             ORDER BY site_id LIMIT {PRUNE_BATCH}"
        );
        let mut pruned = 0;
        loop {
            let mut tx = self.store.begin_write().await?;
            let sites: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(expired.clone()))
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
            if sites.is_empty() {
                return Ok(pruned);
            }
            let list = json_list(sites);
            let in_list = self.store.json_strings("$1");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO escrow_audit (audit_time, action, site_id, principal, reason, contacts)
                 SELECT $2, 'prune', s.site_id, $3, $4,
                        (SELECT COUNT(*) FROM escrow_contacts c WHERE c.site_id = s.site_id)
                 FROM escrow_sites s WHERE s.site_id IN ({in_list})"
            )))
            .bind(list.clone())
            .bind(self.now())
            .bind(PRUNER)
            .bind(format!(
                "escrow retention of {} after the purge passed",
                humantime_serde::re::humantime::format_duration(self.retention)
            ))
            .execute(&mut *tx)
            .await?;
            pruned += sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM escrow_contacts WHERE site_id IN ({in_list})"
            )))
            .bind(list.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM escrow_sites WHERE site_id IN ({in_list})"
            )))
            .bind(list)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
    }

    /// Prunes now and then every `interval` until the process ends.
    pub fn spawn_pruner(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let escrow = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                match escrow.prune().await {
                    Ok(0) => {}
                    Ok(contacts) => tracing::info!(
                        contacts,
                        "removed escrowed contacts of sites purged longer than the escrow retention ago"
                    ),
                    Err(error) => tracing::warn!(%error, "pruning the contact escrow failed"),
                }
            }
        })
    }
}

/// Stamps the purge time on a purged site's escrow, which starts its retention.
pub struct EscrowHooks {
    escrow: ContactEscrow,
}

impl EscrowHooks {
    pub fn new(escrow: ContactEscrow) -> Self {
        Self { escrow }
    }
}

#[tonic::async_trait]
impl LifecycleHooks for EscrowHooks {
    async fn after_purge(&self, sites: &[SiteId]) -> Result<(), LifecycleError> {
        self.escrow.stamp_purged(Some(sites)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use micros_platform::{
        clock::TestClock,
        config::LifecycleConfig,
        ids::OperationId,
        lifecycle::{Justification, Lifecycle, LifecycleRequest, Target},
        testing::{self, TestStore},
    };

    use super::*;
    use crate::schema::SCHEMA;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn request(site_id: SiteId) -> LifecycleRequest {
        LifecycleRequest {
            targets: vec![Target::Site(site_id)],
            operation_id: OperationId::new(),
            justification: Justification {
                principal: "test".to_owned(),
                reason: "escrow retention test".to_owned(),
                ticket: String::new(),
            },
            validate_only: false,
            lease_token: None,
            call_key: String::new(),
            grant: None,
        }
    }

    async fn contacts_of(store: &Store, site_id: SiteId) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM escrow_contacts WHERE site_id = $1")
            .bind(site_id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn escrow_outlives_the_purge_by_its_retention_even_without_the_hook() {
        for backend in testing::backends() {
            let test_store = TestStore::new(backend);
            let store = Store::open(
                &test_store.config,
                "identity",
                &micros_platform::migrations!(),
            )
            .await
            .unwrap();
            let clock = TestClock::new();
            let escrow = ContactEscrow::new(store.clone(), Arc::new(clock.clone()), 400 * DAY);
            let lifecycle = Lifecycle::open(
                store.clone(),
                SCHEMA,
                Arc::new(clock.clone()),
                LifecycleConfig::default(),
                Arc::new(EscrowHooks::new(escrow.clone())),
            )
            .await
            .unwrap();
            let (hooked, missed, kept) = (SiteId::new(), SiteId::new(), SiteId::new());
            for site_id in [hooked, missed, kept] {
                lifecycle.register(site_id).await.unwrap();
                escrow
                    .escrow(&EscrowRequest {
                        site_id,
                        site_name: "Acme".to_owned(),
                        site_url: "https://acme.example.com".to_owned(),
                        contacts: vec![Contact {
                            email: Email::parse("email", "admin@acme.example.com").unwrap(),
                            name: "Ada".to_owned(),
                            kind: ContactKind::Admin,
                        }],
                    })
                    .await
                    .unwrap();
            }
            for site_id in [hooked, missed] {
                lifecycle.soft_delete(&request(site_id)).await.unwrap();
            }
            clock.advance(31 * DAY);
            for site_id in [hooked, missed] {
                lifecycle.purge(&request(site_id)).await.unwrap();
            }
            sqlx::query("UPDATE escrow_sites SET purged_at = NULL WHERE site_id = $1")
                .bind(missed.to_string())
                .execute(store.pool())
                .await
                .unwrap();

            clock.advance(399 * DAY);
            assert_eq!(escrow.prune().await.unwrap(), 0, "{backend:?}");
            for site_id in [hooked, missed, kept] {
                assert_eq!(contacts_of(&store, site_id).await, 1);
            }

            clock.advance(2 * DAY);
            assert_eq!(escrow.prune().await.unwrap(), 2, "{backend:?}");
            assert_eq!(contacts_of(&store, hooked).await, 0);
            assert_eq!(
                contacts_of(&store, missed).await,
                0,
                "caught up from the registry"
            );
            assert_eq!(
                contacts_of(&store, kept).await,
                1,
                "never purged, never pruned"
            );
            let audited: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM escrow_audit WHERE action = 'prune' AND contacts = 1",
            )
            .fetch_one(store.pool())
            .await
            .unwrap();
            assert_eq!(audited, 2);
            store.close().await;
        }
    }
}
