-- The product-data tables of one shard database (declared in src/schema.rs); every shard
-- holds many sites. Times are unix microseconds; IDs are typed text (`doc_…`, `app_…`).

-- The current state of every document. Issues (product `jira`) have a project key, a
-- number and a status; pages (product `confluence`) have a body. `title` is a page's
-- title or an issue's summary; `search_title` is it folded to lower case, for search.
CREATE TABLE documents (
    site_id             TEXT NOT NULL,
    document_id         TEXT PRIMARY KEY,
    product             TEXT NOT NULL,
    app_installation_id TEXT,
    project_key         TEXT,
    issue_number        BIGINT NOT NULL,
    title               TEXT NOT NULL,
    search_title        TEXT NOT NULL,
    status              TEXT,
    body                TEXT,
    version             BIGINT NOT NULL,
    create_time         BIGINT NOT NULL,
    update_time         BIGINT NOT NULL,
    deleted_by          TEXT,
    deleted_at          BIGINT,
    CHECK (
        (product = 'jira' AND project_key IS NOT NULL AND issue_number > 0
            AND status IN ('to_do', 'in_progress', 'done') AND body IS NULL)
        OR (product = 'confluence' AND project_key IS NULL AND issue_number = 0
            AND status IS NULL AND body IS NOT NULL)
    )
);
CREATE INDEX documents_site ON documents (site_id, document_id);
-- Issue keys are unique within a site, trashed issues included.
CREATE UNIQUE INDEX documents_issue_key ON documents (site_id, project_key, issue_number)
    WHERE product = 'jira';

-- Every version of every document, the current one included, as it was written.
CREATE TABLE document_versions (
    site_id             TEXT NOT NULL,
    version_key         TEXT PRIMARY KEY,
    document_id         TEXT NOT NULL,
    app_installation_id TEXT,
    version             BIGINT NOT NULL,
    title               TEXT NOT NULL,
    status              TEXT,
    body                TEXT,
    create_time         BIGINT NOT NULL,
    deleted_by          TEXT,
    deleted_at          BIGINT
);
CREATE INDEX document_versions_site ON document_versions (site_id);
CREATE UNIQUE INDEX document_versions_document ON document_versions (document_id, version);
