-- The live grants of custom roles (`__role:R#grants@__perm:<type>.<name>`,
-- tenancy/encoding.py), across tenants. WriteSchema reads them under the schema lock to
-- refuse dropping a permission a role grants (reads.ROLE_GRANTS_SQL); every other index
-- leads with the tenant, so without this one that read was a scan of the whole table.
-- Few rows match: a write of anything else only tests its condition.

CREATE INDEX IF NOT EXISTS relationships_role_grants
    ON relationships (subject_id, tenant, resource_id)
    WHERE resource_type = '__role' AND relation = 'grants' AND deleted_rev IS NULL;
