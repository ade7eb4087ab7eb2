-- API key lifecycle (docs/auth.md): expiry, rotation with an overlap window, last use.
-- A rotation keeps the key's id and moves the replaced secret's digest to
-- previous_secret_hash, which still authenticates until previous_until.
-- last_used_at is written in batches by the servers (at most every few seconds per
-- server), never once per call.

ALTER TABLE api_keys
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN previous_secret_hash bytea,
    ADD COLUMN previous_until timestamptz,
    ADD COLUMN last_used_at timestamptz,
    ADD CONSTRAINT api_keys_previous_hash_is_sha256 CHECK (
        previous_secret_hash IS NULL OR octet_length(previous_secret_hash) = 32
    );
