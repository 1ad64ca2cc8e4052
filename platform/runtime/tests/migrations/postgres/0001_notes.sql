-- Tenant-owned tables of the lifecycle tests: notes (some owned by an app) and tags.
CREATE TABLE notes (
    site_id    TEXT NOT NULL,
    note_id    TEXT PRIMARY KEY,
    app_id     TEXT,
    title      TEXT NOT NULL,
    size       BIGINT NOT NULL,
    deleted_by TEXT,
    deleted_at BIGINT
);
CREATE INDEX notes_site ON notes (site_id);

CREATE TABLE tags (
    site_id    TEXT NOT NULL,
    tag_id     TEXT PRIMARY KEY,
    note_id    TEXT NOT NULL,
    label      TEXT NOT NULL,
    deleted_by TEXT,
    deleted_at BIGINT
);
CREATE INDEX tags_site ON tags (site_id);
