-- Sites: the tenants. Times are unix microseconds; IDs are typed text (`site_…`).
CREATE TABLE sites (
    site_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    region      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'deleted', 'purged')),
    create_time BIGINT NOT NULL,
    delete_time BIGINT,
    expire_time BIGINT
);

-- A URL stays reserved while its site exists in any state, so a restore never collides.
CREATE UNIQUE INDEX sites_url ON sites (url);
