-- The orchestrator's durable state: plans, operations and each target's progress.
-- Times are unix microseconds.

CREATE TABLE plans (
    plan_id           TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    requested_by      TEXT NOT NULL,
    approved_by       TEXT,
    requires_approval BIGINT NOT NULL,
    reason            TEXT NOT NULL,
    ticket            TEXT NOT NULL,
    undo_operation_id TEXT,
    point_in_time     BIGINT,
    body              TEXT NOT NULL,
    create_time       BIGINT NOT NULL,
    expire_time       BIGINT NOT NULL,
    operation_id      TEXT
);

CREATE TABLE operations (
    operation_id      TEXT PRIMARY KEY,
    plan_id           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL,
    undo_operation_id TEXT,
    point_in_time     BIGINT,
    requested_by      TEXT NOT NULL,
    approved_by       TEXT,
    reason            TEXT NOT NULL,
    ticket            TEXT NOT NULL,
    waves             BIGINT NOT NULL,
    halt_reason       TEXT,
    -- The restore operation an abort uses to undo what this one deleted.
    revert_operation_id TEXT,
    create_time       BIGINT NOT NULL,
    update_time       BIGINT NOT NULL,
    finish_time       BIGINT
);

-- One row per target; `status` is its step (pending → recorded → deleted → verified, or
-- restored / purged / reverted), `fingerprints` what each service described before.
CREATE TABLE operation_targets (
    operation_id        TEXT NOT NULL,
    position            BIGINT NOT NULL,
    site_id             TEXT NOT NULL,
    app_installation_id TEXT,
    site_name           TEXT NOT NULL,
    site_url            TEXT NOT NULL,
    wave                BIGINT NOT NULL,
    status              TEXT NOT NULL,
    fingerprints        TEXT,
    error               TEXT,
    update_time         BIGINT NOT NULL,
    PRIMARY KEY (operation_id, position)
);
CREATE INDEX operation_targets_site ON operation_targets (site_id);

-- Each lifecycle call a wave made, once: a call repeated after a crash is answered by
-- the service from its own record and is not logged again.
CREATE TABLE operation_steps (
    operation_id  TEXT NOT NULL,
    wave          BIGINT NOT NULL,
    service       TEXT NOT NULL,
    action        TEXT NOT NULL,
    targets       BIGINT NOT NULL,
    rows_affected BIGINT NOT NULL,
    step_time     BIGINT NOT NULL,
    PRIMARY KEY (operation_id, wave, service, action)
);
