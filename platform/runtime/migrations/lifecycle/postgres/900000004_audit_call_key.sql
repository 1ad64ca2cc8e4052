-- Which call of its operation an audit record is: two calls of one operation over the
-- same targets (a rehearsal's second delete of the canary) differ by their key.
ALTER TABLE lifecycle_audit ADD COLUMN call_key TEXT NOT NULL DEFAULT '';
