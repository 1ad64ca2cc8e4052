-- The deletion guard's ledger: every customer target (site, or app installation as
-- `site:app`) an operation took down in this database, once, and whether a grant
-- covered it. The free rate counts the ungranted rows of the last hour; a grant caps
-- the rows of its operation.
CREATE TABLE lifecycle_deletions (
    operation_id TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    delete_time  BIGINT  NOT NULL,
    granted      INTEGER NOT NULL,
    PRIMARY KEY (operation_id, target)
);
CREATE INDEX lifecycle_deletions_free ON lifecycle_deletions (granted, delete_time);
