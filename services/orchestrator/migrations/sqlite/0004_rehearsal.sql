-- The rollback rehearsal of a deletion's canary: the operation its restore runs under,
-- how far it came (restoring, restored, done) and when it began and ended.
ALTER TABLE operations ADD COLUMN rehearsal_operation_id TEXT;
ALTER TABLE operations ADD COLUMN rehearsal_state TEXT;
ALTER TABLE operations ADD COLUMN rehearsal_start BIGINT;
ALTER TABLE operations ADD COLUMN rehearsal_end BIGINT;
