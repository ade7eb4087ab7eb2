-- Service accounts (docs/identity.md): non-human identities of a tenant, subjects of
-- decisions as `serviceaccount:<account_id>`, owning API keys. A disabled account's keys
-- are refused: the key store reads `disabled_at` with each key.

CREATE TABLE service_accounts (
    tenant text COLLATE "C" NOT NULL,
    account_id text COLLATE "C" NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    PRIMARY KEY (tenant, account_id)
);

ALTER TABLE api_keys ADD COLUMN service_account text COLLATE "C";

CREATE INDEX api_keys_service_account
    ON api_keys (tenant, service_account) WHERE service_account IS NOT NULL;
