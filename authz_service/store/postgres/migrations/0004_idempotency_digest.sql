-- The request an idempotency key was first used with (a SHA-256 digest, see
-- authz_service/store/idempotency.py): a retry must be the same request, and the same key
-- with a different request is refused. Keys recorded before this migration have none;
-- reusing one of them is refused too, since its request cannot be compared.
ALTER TABLE idempotency_keys ADD COLUMN request_digest bytea;
