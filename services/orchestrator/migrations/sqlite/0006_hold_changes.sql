-- A hold change in flight on a site: set or cleared in every service one change at a
-- time, across replicas, so two operators racing on one site cannot leave the services
-- disagreeing. A change that dies with its process lapses at `expire_time`.
CREATE TABLE hold_changes (
    site_id     TEXT PRIMARY KEY,
    change_id   TEXT NOT NULL,
    expire_time BIGINT NOT NULL
);
