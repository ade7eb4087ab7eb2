-- The tenant registry (authz_service/store/registry.py). Every tenant that already has a
-- row here (it has written something) is registered as active, so existing deployments
-- keep working; from now on a tenant exists only once created (CreateTenant, `--demo`,
-- `authz import --create-tenant`). A deleted tenant keeps its row (state 'deleted') and
-- its head, so revisions never repeat under one name.
ALTER TABLE tenants
    ADD COLUMN state text NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'suspended', 'deleted')),
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
