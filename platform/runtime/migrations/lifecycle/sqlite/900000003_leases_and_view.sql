-- The newest orchestrator lease token seen per site: a lifecycle call carrying an older
-- token comes from an executor that lost its lease (a stale replica, a killed process's
-- call still in flight) and is refused, so it can never undo what a newer one did.
CREATE TABLE tenant_leases (
    site_id TEXT PRIMARY KEY,
    token   BIGINT NOT NULL
);

-- How services read a site's state: the registry is written only by the lifecycle
-- machinery (its `registry` module); domain code and operator views read this view.
CREATE VIEW tenant_view AS
    SELECT site_id, state, delete_time, expire_time, hold, purge_time FROM tenants;
