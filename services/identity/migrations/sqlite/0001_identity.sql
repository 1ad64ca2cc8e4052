-- Identity's tenant-owned tables (declared in src/schema.rs) and the contact escrow,
-- which is deliberately NOT tenant-owned. Times are unix microseconds; IDs are typed
-- text (`site_…`, `usr_…`, `grp_…`, `app_…`).

-- A site's users. An email belongs to one live user of a site at a time.
CREATE TABLE users (
    site_id      TEXT NOT NULL,
    user_id      TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    site_admin   BIGINT NOT NULL CHECK (site_admin IN (0, 1)),
    create_time  BIGINT NOT NULL,
    deleted_by   TEXT,
    deleted_at   BIGINT
);
CREATE INDEX users_site ON users (site_id);
CREATE UNIQUE INDEX users_live_email ON users (site_id, email) WHERE deleted_by IS NULL;

-- A site's groups; a name belongs to one live group of a site at a time.
CREATE TABLE user_groups (
    site_id     TEXT NOT NULL,
    group_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    deleted_by  TEXT,
    deleted_at  BIGINT
);
CREATE INDEX user_groups_site ON user_groups (site_id);
CREATE UNIQUE INDEX user_groups_live_name ON user_groups (site_id, name) WHERE deleted_by IS NULL;

-- Users in groups; the key is `<grp_…>/<usr_…>`.
CREATE TABLE memberships (
    site_id        TEXT NOT NULL,
    membership_key TEXT PRIMARY KEY,
    group_id       TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    create_time    BIGINT NOT NULL,
    deleted_by     TEXT,
    deleted_at     BIGINT
);
CREATE INDEX memberships_site ON memberships (site_id);
CREATE INDEX memberships_group ON memberships (group_id, user_id);
CREATE INDEX memberships_user ON memberships (user_id);

-- Roles on products granted to a user or group; the key is
-- `<subject>/<product>/<role>/<app_… or direct>`. A grant made for an app installation
-- names it, so that uninstalling the app removes exactly its grants.
CREATE TABLE permission_grants (
    site_id             TEXT NOT NULL,
    grant_key           TEXT PRIMARY KEY,
    subject_id          TEXT NOT NULL,
    product             TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('use', 'admin')),
    app_installation_id TEXT,
    create_time         BIGINT NOT NULL,
    deleted_by          TEXT,
    deleted_at          BIGINT
);
CREATE INDEX permission_grants_site ON permission_grants (site_id, grant_key);
CREATE INDEX permission_grants_subject ON permission_grants (subject_id);

-- Whether a site's users may reach a product; the key is `<site_…>/<product>`.
CREATE TABLE product_access (
    site_id            TEXT NOT NULL,
    product_access_key TEXT PRIMARY KEY,
    product            TEXT NOT NULL,
    enabled            BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    update_time        BIGINT NOT NULL,
    deleted_by         TEXT,
    deleted_at         BIGINT
);
CREATE INDEX product_access_site ON product_access (site_id);

-- The contact escrow: outside every site's lifecycle (not declared to the machinery),
-- so no soft delete, restore or purge of a site touches it. A site's escrow is removed
-- only by an explicit ForgetContacts, or once `purged_at` + the escrow retention passed.
CREATE TABLE escrow_sites (
    site_id     TEXT PRIMARY KEY,
    site_name   TEXT NOT NULL,
    site_url    TEXT NOT NULL,
    escrow_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    -- When the site was purged here; NULL while it is active or soft-deleted.
    purged_at   BIGINT
);
CREATE INDEX escrow_sites_purged ON escrow_sites (purged_at);

-- One row per (site, email, kind); emails are stored lower-case.
CREATE TABLE escrow_contacts (
    site_id     TEXT NOT NULL,
    email       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'billing', 'technical')),
    name        TEXT NOT NULL,
    escrow_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (site_id, email, kind)
);
CREATE INDEX escrow_contacts_email ON escrow_contacts (email, site_id);

-- Every removal from the escrow (forgotten on request, or pruned after retention):
-- who, why, how many contacts. No contact data is kept here.
CREATE TABLE escrow_audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_time BIGINT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('forget', 'prune')),
    site_id    TEXT NOT NULL,
    principal  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    contacts   BIGINT NOT NULL
);
CREATE INDEX escrow_audit_site ON escrow_audit (site_id);
