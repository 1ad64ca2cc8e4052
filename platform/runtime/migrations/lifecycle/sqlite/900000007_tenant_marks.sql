-- Row-level marks as what they are: an app installation's rows of one table marked
-- deleted by an operation (`mark`), or that operation's marks undone (`unmark`), one
-- record per table and target instead of a before-image per row. A point-in-time
-- restore rewinds them: a mark set `deleted_by = operation_id, deleted_at = deleted_at`
-- on the target's live rows; an unmark cleared them from rows that all carried that
-- `deleted_at`, in a target with no live row before it (an unmark that cannot be
-- described so logs its rows' before-images to `tenant_changes` instead).
-- `after_seq` orders a record among the change log's entries: it follows every change
-- with `seq <= after_seq` and precedes every later one (a call holds its sites' registry
-- rows, so no change of those sites is logged concurrently with its records).
CREATE TABLE tenant_marks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id      TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    owner        TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('mark', 'unmark')),
    deleted_at   BIGINT NOT NULL,
    change_time  BIGINT NOT NULL,
    after_seq    BIGINT NOT NULL
);
CREATE INDEX tenant_marks_site_time ON tenant_marks (site_id, change_time);
CREATE INDEX tenant_marks_time ON tenant_marks (change_time);
