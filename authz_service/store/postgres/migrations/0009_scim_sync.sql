-- The SCIM sync status of each tenant (GetScimSync, docs/identity.md): the last push
-- answered successfully and the last one refused, with its SCIM detail. Kept in the
-- database rather than in a process, so that every worker and replica reports the same
-- status whichever one answered the push.

CREATE TABLE scim_sync (
    tenant text COLLATE "C" PRIMARY KEY,
    last_push timestamptz,
    last_error_time timestamptz,
    last_error text NOT NULL DEFAULT ''
);
