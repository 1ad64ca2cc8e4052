-- Row-level marks as what they are: an app installation's rows of one table marked
-- deleted by an operation (`mark`), or that operation's marks undone (`unmark`), one
-- record per table and target instead of a before-image per row. A point-in-time
-- restore rewinds them: a mark sets `deleted_by = operation_id, deleted_at = deleted_at`
-- on the target's live rows; an unmark clears it from rows that all carried
-- `deleted_at` (it is recorded only when it revived every row of the target that was
-- not live and had that operation's mark, and no row of the target was live before it;
-- otherwise the revived rows' before-images go to `tenant_changes` as for any write).
-- `after_seq` orders a mark among the change log's entries: it follows every change
-- with `seq <= after_seq` and precedes every later one (calls hold their sites' registry
-- rows, so the changes of one site are never concurrent with its marks).
CREATE TABLE tenant_marks (
    seq          BIGSERIAL PRIMARY KEY,
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
