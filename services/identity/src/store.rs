//! The directory's SQL, all of it: users, groups, memberships, grants and product access.
//!
//! Every statement runs on a [`LiveTenant`] (handed out for an active site alone) and
//! binds its site, so a deleted site's directory is unreachable and another site's ID
//! matches nothing. Writes go through the tenant's [`TenantTx`], which logs each row's
//! before-image for point-in-time restore. The contact escrow's SQL is in `escrow.rs`.

use micros_platform::{
    admission::SiteAdmission,
    ids::{GroupId, Id, IdKind, SiteId, UserId},
    lifecycle::{Lifecycle, LifecycleError, LiveTenant, TenantState, TenantTx, Value},
    store::{Backend, StoreError},
};
use sqlx::{Row, any::AnyRow};

use crate::{
    domain::{
        Email, Grant, GrantFilter, GrantSpec, Group, Membership, NewUser, ProductAccess,
        ProductRole, Subject, User, membership_key,
    },
    error::IdentityError,
    schema::{GRANTS, GROUPS, MEMBERSHIPS, PRODUCT_ACCESS, USERS},
};

const USER_COLUMNS: &str = "user_id, site_id, email, display_name, site_admin, create_time";
const GROUP_COLUMNS: &str = "group_id, site_id, name, create_time";
const GRANT_COLUMNS: &str = "site_id, subject_id, product, role, app_installation_id, create_time";

/// Rows deleted along with a user or a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cascade {
    pub memberships: u64,
    pub grants: u64,
}

#[derive(Debug, Clone)]
pub struct DirectoryStore {
    lifecycle: Lifecycle,
    admission: SiteAdmission,
}

impl DirectoryStore {
    pub fn new(lifecycle: Lifecycle, admission: SiteAdmission) -> Self {
        Self {
            lifecycle,
            admission,
        }
    }

    /// The site's handle, registering the site here if this service has never seen it
    /// and the catalog has it active; a deleted or purged site stays refused.
    pub async fn register(&self, site_id: SiteId) -> Result<LiveTenant, IdentityError> {
        Ok(self.admission.admit(&self.lifecycle, site_id).await?)
    }

    /// Escrowing contacts is allowed for a site in any state the catalog knows: a site
    /// new here is registered as active only when the catalog has it active (a deleted
    /// one is left unregistered); a site the catalog does not know is SITE_NOT_FOUND.
    pub async fn know(&self, site_id: SiteId) -> Result<(), IdentityError> {
        if self.lifecycle.state(site_id).await? != TenantState::Absent {
            return Ok(());
        }
        match self.admission.confirm_active(site_id).await {
            Ok(()) => match self.lifecycle.register(site_id).await {
                Ok(_) | Err(LifecycleError::SiteDeleted { .. }) => Ok(()),
                Err(error) => Err(error.into()),
            },
            Err(LifecycleError::SiteDeleted { .. } | LifecycleError::Purged { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The handle of an active site; SITE_DELETED or SITE_NOT_FOUND otherwise.
    pub async fn live(&self, site_id: SiteId) -> Result<LiveTenant, IdentityError> {
        Ok(self.lifecycle.live(site_id).await?)
    }

    /// The handle of an active site for a list read: `None` when nothing of it is here
    /// yet and the catalog has it active (the list is empty).
    pub async fn reader(&self, site_id: SiteId) -> Result<Option<LiveTenant>, IdentityError> {
        Ok(self.admission.read(&self.lifecycle, site_id).await?)
    }

    /// ` FOR UPDATE` on PostgreSQL, so that a read-check-write transaction holds the row
    /// it checked (SQLite's write transactions are serial anyway).
    fn for_update(&self) -> &'static str {
        match self.lifecycle.store().backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    // Users.

    /// Inserts a user; the same user again (same ID and attributes) returns it as it is.
    pub async fn create_user(
        &self,
        tenant: &LiveTenant,
        new: &NewUser,
    ) -> Result<User, IdentityError> {
        let mut tx = tenant.begin().await?;
        let now = tx.now();
        let inserted = tx
            .insert(
                USERS,
                &[
                    ("user_id", Value::from(new.user_id.to_string())),
                    ("email", Value::from(new.email.as_str())),
                    ("display_name", Value::from(new.display_name.as_str())),
                    ("site_admin", Value::from(new.site_admin)),
                    ("create_time", Value::from(now)),
                ],
            )
            .await;
        match inserted {
            Ok(()) => {
                tx.commit().await?;
                Ok(User {
                    user_id: new.user_id,
                    site_id: tenant.site_id(),
                    email: new.email.clone(),
                    display_name: new.display_name.clone(),
                    site_admin: new.site_admin,
                    create_time: now,
                })
            }
            Err(error) if error.conflict().is_some() => {
                drop(tx);
                // Only this site's rows are read: the ID may belong to another site.
                let holder = self.user_by_email(tenant, &new.email).await?;
                match holder {
                    Some(existing) if existing.user_id == new.user_id => {
                        if new.matches(&existing) {
                            Ok(existing)
                        } else {
                            Err(IdentityError::UserIdTaken {
                                user_id: new.user_id,
                            })
                        }
                    }
                    Some(_) => Err(IdentityError::UserEmailTaken {
                        site_id: tenant.site_id(),
                        email: new.email.as_str().to_owned(),
                    }),
                    None => Err(IdentityError::UserIdTaken {
                        user_id: new.user_id,
                    }),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn user_by_email(
        &self,
        tenant: &LiveTenant,
        email: &Email,
    ) -> Result<Option<User>, IdentityError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE site_id = $1 AND email = $2 AND deleted_by IS NULL"
        )))
        .bind(tenant.site_key())
        .bind(email.as_str().to_owned())
        .fetch_optional(tenant.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// One live user of the tenant; USER_NOT_FOUND otherwise.
    pub async fn user(&self, tenant: &LiveTenant, user_id: UserId) -> Result<User, IdentityError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE site_id = $1 AND user_id = $2 AND deleted_by IS NULL"
        )))
        .bind(tenant.site_key())
        .bind(user_id.to_string())
        .fetch_optional(tenant.pool())
        .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(IdentityError::UserNotFound {
                site_id: tenant.site_id(),
                user_id,
            })
    }

    /// Reads and locks a live user inside `tx`; USER_NOT_FOUND otherwise.
    async fn locked_user(&self, tx: &mut TenantTx, user_id: UserId) -> Result<User, IdentityError> {
        let site_id = tx.site_id();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE site_id = $1 AND user_id = $2 AND deleted_by IS NULL{}",
            self.for_update()
        )))
        .bind(site_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(tx.connection())
        .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(IdentityError::UserNotFound { site_id, user_id })
    }

    /// The tenant's live users after `after` in ID (creation) order.
    pub async fn list_users(
        &self,
        tenant: &LiveTenant,
        after: Option<&str>,
        limit: usize,
        site_admins_only: bool,
    ) -> Result<Vec<User>, IdentityError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE site_id = $1 AND deleted_by IS NULL AND user_id > $2
               AND ($3 = 0 OR site_admin = 1)
             ORDER BY user_id LIMIT $4"
        )))
        .bind(tenant.site_key())
        .bind(after.unwrap_or("").to_owned())
        .bind(i64::from(site_admins_only))
        .bind(limit_of(limit))
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Makes the user a site admin or not; a change to the value it has writes nothing.
    pub async fn set_site_admin(
        &self,
        tenant: &LiveTenant,
        user_id: UserId,
        site_admin: bool,
    ) -> Result<User, IdentityError> {
        let mut tx = tenant.begin().await?;
        let mut user = self.locked_user(&mut tx, user_id).await?;
        if user.site_admin == site_admin {
            return Ok(user);
        }
        tx.update(
            USERS,
            &user_id.to_string(),
            &[("site_admin", Value::from(site_admin))],
        )
        .await?;
        tx.commit().await?;
        user.site_admin = site_admin;
        Ok(user)
    }

    /// A user-level delete: the user, their memberships and the grants to them are marked
    /// deleted by the user's own ID, a marker no lifecycle restore undoes.
    pub async fn delete_user(
        &self,
        tenant: &LiveTenant,
        user_id: UserId,
    ) -> Result<Cascade, IdentityError> {
        let mut tx = tenant.begin().await?;
        self.locked_user(&mut tx, user_id).await?;
        let marker = user_id.to_string();
        tx.trash(USERS, &marker, &marker).await?;
        let cascade = Cascade {
            memberships: trash_rows_of(&mut tx, MEMBERSHIPS, "membership_key", "user_id", &marker)
                .await?,
            grants: trash_rows_of(&mut tx, GRANTS, "grant_key", "subject_id", &marker).await?,
        };
        tx.commit().await?;
        Ok(cascade)
    }

    // Groups.

    /// Inserts a group; the same group again (same ID and name) returns it as it is.
    pub async fn create_group(
        &self,
        tenant: &LiveTenant,
        group_id: GroupId,
        name: &str,
    ) -> Result<Group, IdentityError> {
        let mut tx = tenant.begin().await?;
        let now = tx.now();
        let inserted = tx
            .insert(
                GROUPS,
                &[
                    ("group_id", Value::from(group_id.to_string())),
                    ("name", Value::from(name)),
                    ("create_time", Value::from(now)),
                ],
            )
            .await;
        match inserted {
            Ok(()) => {
                tx.commit().await?;
                Ok(Group {
                    group_id,
                    site_id: tenant.site_id(),
                    name: name.to_owned(),
                    create_time: now,
                })
            }
            Err(error) if error.conflict().is_some() => {
                drop(tx);
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {GROUP_COLUMNS} FROM user_groups
                     WHERE site_id = $1 AND name = $2 AND deleted_by IS NULL"
                )))
                .bind(tenant.site_key())
                .bind(name.to_owned())
                .fetch_optional(tenant.pool())
                .await?;
                match row.as_ref().map(group_from_row).transpose()? {
                    Some(existing) if existing.group_id == group_id => Ok(existing),
                    Some(_) => Err(IdentityError::GroupNameTaken {
                        site_id: tenant.site_id(),
                        name: name.to_owned(),
                    }),
                    None => Err(IdentityError::GroupIdTaken { group_id }),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// One live group of the tenant; GROUP_NOT_FOUND otherwise.
    pub async fn group(
        &self,
        tenant: &LiveTenant,
        group_id: GroupId,
    ) -> Result<Group, IdentityError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM user_groups
             WHERE site_id = $1 AND group_id = $2 AND deleted_by IS NULL"
        )))
        .bind(tenant.site_key())
        .bind(group_id.to_string())
        .fetch_optional(tenant.pool())
        .await?;
        row.as_ref()
            .map(group_from_row)
            .transpose()?
            .ok_or(IdentityError::GroupNotFound {
                site_id: tenant.site_id(),
                group_id,
            })
    }

    /// Reads and locks a live group inside `tx`; GROUP_NOT_FOUND otherwise.
    async fn locked_group(
        &self,
        tx: &mut TenantTx,
        group_id: GroupId,
    ) -> Result<Group, IdentityError> {
        let site_id = tx.site_id();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM user_groups
             WHERE site_id = $1 AND group_id = $2 AND deleted_by IS NULL{}",
            self.for_update()
        )))
        .bind(site_id.to_string())
        .bind(group_id.to_string())
        .fetch_optional(tx.connection())
        .await?;
        row.as_ref()
            .map(group_from_row)
            .transpose()?
            .ok_or(IdentityError::GroupNotFound { site_id, group_id })
    }

    /// The tenant's live groups after `after` in ID (creation) order.
    pub async fn list_groups(
        &self,
        tenant: &LiveTenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Group>, IdentityError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM user_groups
             WHERE site_id = $1 AND deleted_by IS NULL AND group_id > $2
             ORDER BY group_id LIMIT $3"
        )))
        .bind(tenant.site_key())
        .bind(after.unwrap_or("").to_owned())
        .bind(limit_of(limit))
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    /// A user-level delete of a group with its memberships and the grants to it, marked
    /// with the group's own ID.
    pub async fn delete_group(
        &self,
        tenant: &LiveTenant,
        group_id: GroupId,
    ) -> Result<Cascade, IdentityError> {
        let mut tx = tenant.begin().await?;
        self.locked_group(&mut tx, group_id).await?;
        let marker = group_id.to_string();
        tx.trash(GROUPS, &marker, &marker).await?;
        let cascade = Cascade {
            memberships: trash_rows_of(&mut tx, MEMBERSHIPS, "membership_key", "group_id", &marker)
                .await?,
            grants: trash_rows_of(&mut tx, GRANTS, "grant_key", "subject_id", &marker).await?,
        };
        tx.commit().await?;
        Ok(cascade)
    }

    // Memberships.

    /// Adds a live user to a live group of the tenant; an existing membership is returned.
    pub async fn add_member(
        &self,
        tenant: &LiveTenant,
        group_id: GroupId,
        user_id: UserId,
    ) -> Result<Membership, IdentityError> {
        let key = membership_key(group_id, user_id);
        let mut tx = tenant.begin().await?;
        self.locked_group(&mut tx, group_id).await?;
        self.locked_user(&mut tx, user_id).await?;
        if let Some(existing) = live_membership(&mut tx, &key).await? {
            return Ok(existing);
        }
        let now = tx.now();
        let inserted = tx
            .insert(
                MEMBERSHIPS,
                &[
                    ("membership_key", Value::from(key.clone())),
                    ("group_id", Value::from(group_id.to_string())),
                    ("user_id", Value::from(user_id.to_string())),
                    ("create_time", Value::from(now)),
                ],
            )
            .await;
        match inserted {
            Ok(()) => {
                tx.commit().await?;
                Ok(Membership {
                    site_id: tenant.site_id(),
                    group_id,
                    user_id,
                    create_time: now,
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Removes a live membership for good (logged, so a point-in-time restore brings it
    /// back); MEMBERSHIP_NOT_FOUND when there is none.
    pub async fn remove_member(
        &self,
        tenant: &LiveTenant,
        group_id: GroupId,
        user_id: UserId,
    ) -> Result<(), IdentityError> {
        let key = membership_key(group_id, user_id);
        let mut tx = tenant.begin().await?;
        if live_membership(&mut tx, &key).await?.is_none() {
            return Err(IdentityError::MembershipNotFound { group_id, user_id });
        }
        tx.delete(MEMBERSHIPS, &key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live users of a live group, after user `after` in ID order.
    pub async fn list_members(
        &self,
        tenant: &LiveTenant,
        group_id: GroupId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, IdentityError> {
        self.group(tenant, group_id).await?;
        let rows = sqlx::query(
            "SELECT u.user_id, u.site_id, u.email, u.display_name, u.site_admin, u.create_time
             FROM memberships m JOIN users u ON u.user_id = m.user_id AND u.site_id = m.site_id
             WHERE m.site_id = $1 AND m.group_id = $2 AND m.deleted_by IS NULL
               AND u.deleted_by IS NULL AND u.user_id > $3
             ORDER BY u.user_id LIMIT $4",
        )
        .bind(tenant.site_key())
        .bind(group_id.to_string())
        .bind(after.unwrap_or("").to_owned())
        .bind(limit_of(limit))
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    // Grants.

    /// Grants a live subject of the tenant a role; an existing grant is returned, one
    /// removed with its app installation is GRANT_REMOVED.
    pub async fn grant(
        &self,
        tenant: &LiveTenant,
        spec: &GrantSpec,
    ) -> Result<Grant, IdentityError> {
        let key = spec.key();
        let mut tx = tenant.begin().await?;
        self.locked_subject(&mut tx, spec.subject).await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS}, deleted_by FROM permission_grants
             WHERE site_id = $1 AND grant_key = $2"
        )))
        .bind(tenant.site_key())
        .bind(key.clone())
        .fetch_optional(tx.connection())
        .await?;
        if let Some(row) = existing {
            let deleted_by: Option<String> = row.try_get("deleted_by")?;
            return match deleted_by {
                None => grant_from_row(&row),
                Some(deleted_by) => Err(IdentityError::GrantRemoved {
                    grant: key,
                    deleted_by,
                }),
            };
        }
        let now = tx.now();
        tx.insert(
            GRANTS,
            &[
                ("grant_key", Value::from(key)),
                ("subject_id", Value::from(spec.subject.id())),
                ("product", Value::from(spec.product.as_str())),
                ("role", Value::from(spec.role.as_str())),
                (
                    "app_installation_id",
                    Value::from(spec.app_installation_id.map(|app| app.to_string())),
                ),
                ("create_time", Value::from(now)),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Grant {
            site_id: tenant.site_id(),
            spec: spec.clone(),
            create_time: now,
        })
    }

    async fn locked_subject(
        &self,
        tx: &mut TenantTx,
        subject: Subject,
    ) -> Result<(), IdentityError> {
        match subject {
            Subject::User(user_id) => self.locked_user(tx, user_id).await.map(drop),
            Subject::Group(group_id) => self.locked_group(tx, group_id).await.map(drop),
        }
    }

    /// Removes exactly one live grant for good (logged); GRANT_NOT_FOUND otherwise.
    pub async fn revoke(&self, tenant: &LiveTenant, spec: &GrantSpec) -> Result<(), IdentityError> {
        let key = spec.key();
        let mut tx = tenant.begin().await?;
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM permission_grants
             WHERE site_id = $1 AND grant_key = $2 AND deleted_by IS NULL",
        )
        .bind(tenant.site_key())
        .bind(key.clone())
        .fetch_optional(tx.connection())
        .await?;
        if live.is_none() {
            return Err(IdentityError::GrantNotFound {
                site_id: tenant.site_id(),
                grant: key,
            });
        }
        tx.delete(GRANTS, &key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's live grants matching `filter`, after key `after` in key order. A
    /// subject filter names a live subject of the tenant (else USER/GROUP_NOT_FOUND).
    pub async fn list_grants(
        &self,
        tenant: &LiveTenant,
        filter: &GrantFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Grant>, IdentityError> {
        match filter.subject {
            Some(Subject::User(user_id)) => {
                self.user(tenant, user_id).await?;
            }
            Some(Subject::Group(group_id)) => {
                self.group(tenant, group_id).await?;
            }
            None => {}
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM permission_grants
             WHERE site_id = $1 AND deleted_by IS NULL AND grant_key > $2
               AND ($3 = '' OR subject_id = $3) AND ($4 = '' OR product = $4)
             ORDER BY grant_key LIMIT $5"
        )))
        .bind(tenant.site_key())
        .bind(after.unwrap_or("").to_owned())
        .bind(
            filter
                .subject
                .map(|subject| subject.id())
                .unwrap_or_default(),
        )
        .bind(filter.product.clone().unwrap_or_default())
        .bind(limit_of(limit))
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    // Product access.

    /// Sets whether the tenant's users may reach `product`; the value it has writes nothing.
    pub async fn set_product_access(
        &self,
        tenant: &LiveTenant,
        product: &str,
        enabled: bool,
    ) -> Result<ProductAccess, IdentityError> {
        let key = format!("{}/{product}", tenant.site_id());
        let mut tx = tenant.begin().await?;
        let current = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT product, enabled, update_time FROM product_access
             WHERE site_id = $1 AND product_access_key = $2 AND deleted_by IS NULL{}",
            self.for_update()
        )))
        .bind(tenant.site_key())
        .bind(key.clone())
        .fetch_optional(tx.connection())
        .await?;
        let current = current
            .map(|row| access_from_row(tenant.site_id(), &row))
            .transpose()?;
        let now = tx.now();
        match current {
            Some(current) if current.enabled == enabled => return Ok(current),
            Some(_) => {
                tx.update(
                    PRODUCT_ACCESS,
                    &key,
                    &[
                        ("enabled", Value::from(enabled)),
                        ("update_time", Value::from(now)),
                    ],
                )
                .await?;
            }
            None => {
                tx.insert(
                    PRODUCT_ACCESS,
                    &[
                        ("product_access_key", Value::from(key)),
                        ("product", Value::from(product)),
                        ("enabled", Value::from(enabled)),
                        ("update_time", Value::from(now)),
                    ],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(ProductAccess {
            site_id: tenant.site_id(),
            product: product.to_owned(),
            enabled,
            update_time: now,
        })
    }

    /// The tenant's product access, by product.
    pub async fn product_access(
        &self,
        tenant: &LiveTenant,
    ) -> Result<Vec<ProductAccess>, IdentityError> {
        let rows = sqlx::query(
            "SELECT product, enabled, update_time FROM product_access
             WHERE site_id = $1 AND deleted_by IS NULL ORDER BY product",
        )
        .bind(tenant.site_key())
        .fetch_all(tenant.pool())
        .await?;
        rows.iter()
            .map(|row| access_from_row(tenant.site_id(), row))
            .collect()
    }
}

/// Marks deleted every live row of `table` whose `column` names `subject_id`, each
/// through [`TenantTx::trash`] so its before-image is logged, with the subject's own ID
/// as the marker; returns how many.
async fn trash_rows_of(
    tx: &mut TenantTx,
    table: &str,
    key: &str,
    column: &str,
    subject_id: &str,
) -> Result<u64, IdentityError> {
    let site_id = tx.site_id().to_string();
    let keys: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {key} FROM {table} WHERE site_id = $1 AND {column} = $2 AND deleted_by IS NULL"
    )))
    .bind(site_id)
    .bind(subject_id.to_owned())
    .fetch_all(tx.connection())
    .await?;
    let mut trashed = 0;
    for key in keys {
        trashed += tx.trash(table, &key, subject_id).await?;
    }
    Ok(trashed)
}

async fn live_membership(
    tx: &mut TenantTx,
    key: &str,
) -> Result<Option<Membership>, IdentityError> {
    let site_id = tx.site_id();
    let row = sqlx::query(
        "SELECT group_id, user_id, create_time FROM memberships
         WHERE site_id = $1 AND membership_key = $2 AND deleted_by IS NULL",
    )
    .bind(site_id.to_string())
    .bind(key.to_owned())
    .fetch_optional(tx.connection())
    .await?;
    row.map(|row| {
        Ok(Membership {
            site_id,
            group_id: stored_id(&row, "group_id")?,
            user_id: stored_id(&row, "user_id")?,
            create_time: row.try_get("create_time")?,
        })
    })
    .transpose()
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A value the store holds that does not read back: corrupt data, not a bad request.
pub(crate) fn corrupt(what: String) -> IdentityError {
    StoreError::Database(sqlx::Error::Decode(what.into())).into()
}

/// A typed ID read back from column `column`.
pub(crate) fn stored_id<K: IdKind>(row: &AnyRow, column: &str) -> Result<Id<K>, IdentityError> {
    let text: String = row.try_get(column)?;
    Id::parse(&text).map_err(|error| corrupt(format!("{column} {text}: {error}")))
}

fn user_from_row(row: &AnyRow) -> Result<User, IdentityError> {
    Ok(User {
        user_id: stored_id(row, "user_id")?,
        site_id: stored_id(row, "site_id")?,
        email: Email::from_stored(row.try_get("email")?),
        display_name: row.try_get("display_name")?,
        site_admin: row.try_get::<i64, _>("site_admin")? != 0,
        create_time: row.try_get("create_time")?,
    })
}

fn group_from_row(row: &AnyRow) -> Result<Group, IdentityError> {
    Ok(Group {
        group_id: stored_id(row, "group_id")?,
        site_id: stored_id(row, "site_id")?,
        name: row.try_get("name")?,
        create_time: row.try_get("create_time")?,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<Grant, IdentityError> {
    let subject: String = row.try_get("subject_id")?;
    let role: String = row.try_get("role")?;
    let app: Option<String> = row.try_get("app_installation_id")?;
    Ok(Grant {
        site_id: stored_id(row, "site_id")?,
        spec: GrantSpec {
            subject: Subject::parse_stored(&subject)
                .map_err(|error| corrupt(format!("subject_id {subject}: {error}")))?,
            product: row.try_get("product")?,
            role: ProductRole::parse(&role)
                .ok_or_else(|| corrupt(format!("unknown product role {role}")))?,
            app_installation_id: app
                .map(|app| {
                    Id::parse(&app)
                        .map_err(|error| corrupt(format!("app_installation_id {app}: {error}")))
                })
                .transpose()?,
        },
        create_time: row.try_get("create_time")?,
    })
}

fn access_from_row(site_id: SiteId, row: &AnyRow) -> Result<ProductAccess, IdentityError> {
    Ok(ProductAccess {
        site_id,
        product: row.try_get("product")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        update_time: row.try_get("update_time")?,
    })
}
