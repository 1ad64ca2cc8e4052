-- Attachments: metadata of content whose bytes are in the object store under
-- `blob_key`. A tenant-owned table of the lifecycle machinery: `site_id`, `deleted_by`
-- and `deleted_at` are its implicit columns. Times are unix microseconds; IDs are typed
-- text (`med_…`, `site_…`, `app_…`).
CREATE TABLE attachments (
    site_id             TEXT NOT NULL,
    media_id            TEXT PRIMARY KEY,
    app_installation_id TEXT,
    file_name           TEXT NOT NULL,
    content_type        TEXT NOT NULL,
    size_bytes          BIGINT NOT NULL CHECK (size_bytes >= 0),
    sha256              TEXT NOT NULL,
    blob_key            TEXT NOT NULL,
    create_time         BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    deleted_by          TEXT,
    deleted_at          BIGINT
);
-- Every query is scoped to one site; listing pages through a site in media_id order.
CREATE INDEX attachments_site ON attachments (site_id, media_id);
-- Each upload writes a blob of its own: no two rows share one.
CREATE UNIQUE INDEX attachments_blob ON attachments (blob_key);

-- Blobs being written whose row is not committed yet: the purge's blob collection
-- leaves them alone while their site is live. Not tenant data, so outside the
-- lifecycle's schema.
CREATE TABLE blob_uploads (
    blob_key   TEXT PRIMARY KEY,
    site_id    TEXT NOT NULL,
    start_time BIGINT NOT NULL
);
CREATE INDEX blob_uploads_site ON blob_uploads (site_id);
