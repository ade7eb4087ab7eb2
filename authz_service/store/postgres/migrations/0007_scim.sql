-- SCIM provisioning (docs/identity.md): the `scim` key scope, and the resources each
-- tenant's identity provider pushed, kept as it sent them so GET and ETags work.

ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_known;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known CHECK (
    cardinality(scopes) > 0
    AND scopes <@ ARRAY['check', 'write', 'admin', 'audit', 'scim']::text[]
);

CREATE TABLE scim_resources (
    tenant text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,           -- 'User' or 'Group'
    resource_id text COLLATE "C" NOT NULL,
    -- lowercased userName of a User (unique, case-insensitive per RFC 7643); NULL for Groups
    unique_name text COLLATE "C",
    document jsonb NOT NULL,                  -- the resource as pushed, without id and meta
    version bigint NOT NULL,
    created timestamptz NOT NULL,
    modified timestamptz NOT NULL,
    PRIMARY KEY (tenant, kind, resource_id)
);

CREATE UNIQUE INDEX scim_resources_unique_name
    ON scim_resources (tenant, kind, unique_name) WHERE unique_name IS NOT NULL;
