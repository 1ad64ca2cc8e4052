-- The deletion guard moved into the platform's lifecycle (`lifecycle_deletions`, in
-- every service), and budgets became grants the orchestrator signs: the catalog's own
-- ledger and its caller-registered budgets are gone.
DROP TABLE deleted_sites;
DROP TABLE deletion_budgets;
