-- A restore drill on scratch copies: the customers' sites are only copied, the copies
-- are deleted, restored, verified and purged. Each target records its copy.
ALTER TABLE operations ADD COLUMN on_copies BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operation_targets ADD COLUMN scratch_site_id TEXT;
