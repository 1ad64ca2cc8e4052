-- The tenant lifecycle machinery's tables, in every service database (written once in
-- micros-platform; versions from 900000001 keep clear of the services' own migrations).

-- One row per site this database holds data for: state, deleting operation, expiry,
-- hold. A purged site's row stays as a tombstone: a site ID is never reused.
CREATE TABLE tenants (
    site_id     TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('active', 'deleted', 'purging', 'purged')),
    create_time BIGINT NOT NULL,
    deleted_by  TEXT,
    delete_time BIGINT,
    expire_time BIGINT,
    hold        BIGINT NOT NULL DEFAULT 0,
    purged_by   TEXT,
    purge_time  BIGINT
);

-- Before-images of every write to a tenant-owned table (NULL: the row did not exist),
-- so one tenant's slice can be returned to any point within the retention period.
CREATE TABLE tenant_changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id      TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    row_key      TEXT NOT NULL,
    change_time  BIGINT NOT NULL,
    before_image TEXT
);
CREATE INDEX tenant_changes_site_time ON tenant_changes (site_id, change_time);
CREATE INDEX tenant_changes_time ON tenant_changes (change_time);

-- What each lifecycle call answered, so a repeated call is a no-op. One operation may
-- make several calls (the orchestrator's waves), each with its own targets.
CREATE TABLE lifecycle_operations (
    operation_id   TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    action         TEXT NOT NULL,
    response       BLOB NOT NULL,
    create_time    BIGINT NOT NULL,
    PRIMARY KEY (operation_id, request_digest)
);

-- Every destructive call, applied or refused: who, why, which ticket, what.
CREATE TABLE lifecycle_audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_time   BIGINT NOT NULL,
    operation_id TEXT NOT NULL,
    action       TEXT NOT NULL,
    principal    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    ticket       TEXT NOT NULL,
    targets      TEXT NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX lifecycle_audit_operation ON lifecycle_audit (operation_id);
