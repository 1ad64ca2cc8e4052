-- Each site's counts and fingerprint, cached. `version` counts the changes to the site's
-- rows (every tenant write and set-based change bumps it); the cached summary is valid
-- while `digest_version` equals it. A site-level soft delete or restore changes no row,
-- so it leaves the cache valid: describing a site again costs one lookup, not a read of
-- all its rows.
CREATE TABLE tenant_digests (
    site_id        TEXT PRIMARY KEY,
    version        BIGINT NOT NULL DEFAULT 0,
    digest_version BIGINT,
    summary        TEXT
);
