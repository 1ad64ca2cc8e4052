-- The catalog's tenant-owned tables (declared in src/schema.rs) and its deletion budgets.
-- Times are unix microseconds; IDs are typed text (`site_…`, `app_…`).

-- One row per site: its record and placement (the product-data shard).
CREATE TABLE sites (
    site_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    region      TEXT NOT NULL,
    shard       BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    deleted_by  TEXT,
    deleted_at  BIGINT
);
-- A URL stays reserved while its site exists in any state but purged.
CREATE UNIQUE INDEX sites_url ON sites (url);

-- Products on a site and their state.
CREATE TABLE site_products (
    site_id         TEXT NOT NULL,
    site_product_id TEXT PRIMARY KEY,
    product         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'inactive')),
    update_time     BIGINT NOT NULL,
    deleted_by      TEXT,
    deleted_at      BIGINT
);
CREATE INDEX site_products_site ON site_products (site_id);

-- Apps installed on a site; an uninstall marks the row deleted.
CREATE TABLE app_installations (
    site_id             TEXT NOT NULL,
    app_installation_id TEXT PRIMARY KEY,
    app_key             TEXT NOT NULL,
    install_time        BIGINT NOT NULL,
    deleted_by          TEXT,
    deleted_at          BIGINT
);
CREATE INDEX app_installations_site ON app_installations (site_id);

-- Budgets of approved operations registered by the orchestrator.
CREATE TABLE deletion_budgets (
    operation_id  TEXT PRIMARY KEY,
    sites         BIGINT NOT NULL,
    sites_used    BIGINT NOT NULL DEFAULT 0,
    approved_by   TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    create_time   BIGINT NOT NULL
);

-- Site deletions outside any budget, for the hourly rate limit.
-- One row per call: an operation's waves are separate calls.
CREATE TABLE unbudgeted_deletions (
    operation_id TEXT NOT NULL,
    delete_time  BIGINT NOT NULL,
    sites        BIGINT NOT NULL,
    PRIMARY KEY (operation_id, delete_time)
);
CREATE INDEX unbudgeted_deletions_time ON unbudgeted_deletions (delete_time);
