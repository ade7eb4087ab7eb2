-- API keys (docs/auth.md). Only SHA-256 of each secret is stored: the secrets are 256
-- random bits, so a digest is enough and a slow password hash would only cost CPU.
-- Keys are never deleted; revocation stamps revoked_at, so old decision-log records
-- still name a key that can be looked up.

CREATE TABLE api_keys (
    key_id text COLLATE "C" PRIMARY KEY,
    -- a tenant id, or '*' for platform operators' keys (valid for every tenant)
    tenant text COLLATE "C" NOT NULL,
    scopes text[] NOT NULL,
    secret_hash bytea NOT NULL,
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_hash_is_sha256 CHECK (octet_length(secret_hash) = 32),
    CONSTRAINT api_keys_scopes_known CHECK (
        cardinality(scopes) > 0 AND scopes <@ ARRAY['check', 'write', 'admin', 'audit']::text[]
    )
);

CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at, key_id);
