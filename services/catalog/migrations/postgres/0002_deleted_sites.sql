-- Each site an operation took down, once: an operation that deletes a site again (a
-- rollback rehearsal restores its canary and deletes it again) spends no more of its
-- budget or of the hourly rate for it.
CREATE TABLE deleted_sites (
    operation_id TEXT NOT NULL,
    site_id      TEXT NOT NULL,
    delete_time  BIGINT NOT NULL,
    budgeted     BIGINT NOT NULL,
    PRIMARY KEY (operation_id, site_id)
);
CREATE INDEX deleted_sites_rate ON deleted_sites (budgeted, delete_time);
DROP TABLE unbudgeted_deletions;
