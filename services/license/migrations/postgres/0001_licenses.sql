-- Licenses: a site's entitlement to a product for a number of seats. A tenant-owned
-- table of the lifecycle machinery: `site_id`, `deleted_by` and `deleted_at` are its
-- implicit columns. Times are unix microseconds; IDs are typed text (`lic_…`, `site_…`).
CREATE TABLE licenses (
    site_id     TEXT NOT NULL,
    license_id  TEXT PRIMARY KEY,
    product     TEXT NOT NULL,
    seats       BIGINT NOT NULL CHECK (seats > 0),
    state       TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'cancelled')),
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    deleted_by  TEXT,
    deleted_at  BIGINT
);

-- Every query is scoped to one site; listing pages through a site in license_id order.
CREATE INDEX licenses_site ON licenses (site_id, license_id);
