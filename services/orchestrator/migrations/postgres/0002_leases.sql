-- Site leases: an operation holds every site it targets from apply until it ends, so no
-- other operation can act on them meanwhile.
CREATE TABLE site_leases (
    site_id      TEXT PRIMARY KEY,
    operation_id TEXT NOT NULL,
    lease_time   BIGINT NOT NULL
);
CREATE INDEX site_leases_operation ON site_leases (operation_id);

-- The executor's lease on an operation: which runner drives it, until when, and its
-- fencing token. Every executor write checks the token, and so does every service for
-- every lifecycle call, so a runner that lost the operation can change nothing.
ALTER TABLE operations ADD COLUMN runner TEXT;
ALTER TABLE operations ADD COLUMN runner_token BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN runner_expire BIGINT;
-- Set once an abort was asked for: a halted abort resumes as an abort, never as the
-- operation it undoes.
ALTER TABLE operations ADD COLUMN abort_requested BIGINT NOT NULL DEFAULT 0;

-- Fencing tokens only grow: each claim of an operation by a runner takes the next one.
CREATE TABLE lease_tokens (
    name TEXT PRIMARY KEY,
    last BIGINT NOT NULL
);
INSERT INTO lease_tokens (name, last) VALUES ('executor', 0);
