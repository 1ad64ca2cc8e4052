-- When each call of a wave began, so the report shows how long each service took.
ALTER TABLE operation_steps ADD COLUMN start_time BIGINT;

-- Each target's outage window: when the operation first changed it (deleted, or its
-- catalog record restored) and when it was verified done.
ALTER TABLE operation_targets ADD COLUMN changed_time BIGINT;
ALTER TABLE operation_targets ADD COLUMN done_time BIGINT;

-- Holds set by operators through the orchestrator (each service keeps its own hold
-- flag; this is what `micros hold list` shows, with who set it and why).
CREATE TABLE site_holds (
    site_id     TEXT PRIMARY KEY,
    held        BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    ticket      TEXT NOT NULL,
    principal   TEXT NOT NULL,
    update_time BIGINT NOT NULL
);
