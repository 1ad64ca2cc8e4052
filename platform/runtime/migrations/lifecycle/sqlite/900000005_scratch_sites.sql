-- Scratch copies of sites (restore drills on copies): a scratch site carries the site it
-- was copied from, is left out of listings, and may be purged at any time.
ALTER TABLE tenants ADD COLUMN origin_site_id TEXT;

DROP VIEW tenant_view;
CREATE VIEW tenant_view AS
    SELECT site_id, state, delete_time, expire_time, hold, purge_time, origin_site_id FROM tenants;

-- The key each copied row got, per scratch site and table: which row of the origin a
-- row of the copy is.
CREATE TABLE scratch_keys (
    site_id     TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    origin_key  TEXT NOT NULL,
    scratch_key TEXT NOT NULL,
    PRIMARY KEY (site_id, table_name, origin_key)
);
