-- Relationships with per-tenant, commit-ordered revisions (MVCC: rows are never updated
-- except to stamp deleted_rev). Identifier columns use the "C" collation so that ORDER BY
-- and keyset pagination follow code-point order, the same as the memory store.

CREATE TABLE tenants (
    tenant text COLLATE "C" PRIMARY KEY,
    -- newest committed revision; a writer bumps it first, which locks the row until
    -- commit, so writers of one tenant serialize and revisions commit in order
    head bigint NOT NULL CHECK (head >= 0)
);

CREATE TABLE revisions (
    tenant text COLLATE "C" NOT NULL,
    revision bigint NOT NULL,
    -- taken when the writer holds the tenant lock, just before commit; monotonic per tenant
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, revision)
);

CREATE INDEX revisions_committed_at ON revisions (committed_at);

CREATE TABLE relationships (
    tenant text COLLATE "C" NOT NULL,
    resource_type text COLLATE "C" NOT NULL,
    resource_id text COLLATE "C" NOT NULL,
    relation text COLLATE "C" NOT NULL,
    subject_type text COLLATE "C" NOT NULL,
    subject_id text COLLATE "C" NOT NULL,
    subject_relation text COLLATE "C" NOT NULL DEFAULT '',
    caveat_name text COLLATE "C",
    caveat_context jsonb,
    expires_at timestamptz,
    created_rev bigint NOT NULL,
    deleted_rev bigint,
    CONSTRAINT relationships_revisions_ordered CHECK (deleted_rev IS NULL OR deleted_rev > created_rev),
    CONSTRAINT relationships_context_needs_caveat CHECK (caveat_context IS NULL OR caveat_name IS NOT NULL)
);

-- at most one live row per identity
CREATE UNIQUE INDEX relationships_live_identity ON relationships (
    tenant, resource_type, resource_id, relation, subject_type, subject_id, subject_relation
) WHERE deleted_rev IS NULL;

-- check: resource (+ relation) at any revision, already in read order
CREATE INDEX relationships_forward ON relationships (
    tenant, resource_type, resource_id, relation, subject_type, subject_id, subject_relation,
    created_rev
);

-- reverse lookups: which resources does this subject (set) reach
CREATE INDEX relationships_reverse ON relationships (
    tenant, subject_type, subject_id, subject_relation, resource_type, relation, resource_id
);

-- Watch (changes after a revision) and garbage collection
CREATE INDEX relationships_created_rev ON relationships (tenant, created_rev);
CREATE INDEX relationships_deleted_rev ON relationships (tenant, deleted_rev)
    WHERE deleted_rev IS NOT NULL;

CREATE TABLE idempotency_keys (
    tenant text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    revision bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- the product's schema: one for all tenants, every version kept
CREATE TABLE schemas (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version text NOT NULL,
    text text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX schemas_version ON schemas (version, seq);
