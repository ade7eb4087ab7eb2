-- The PostgreSQL mirror of the decision log (AUTHZ_LOG_POSTGRES=true), for querying;
-- the JSON Lines files stay the record of truth. Monthly partitions are created on demand
-- by the writer (authz_service/decisionlog/sink_postgres.py). This DDL is the same text as
-- sink_postgres.MIGRATION_SQL; tests/audit/test_sinks.py keeps the two equal.
CREATE TABLE IF NOT EXISTS decision_log (
    tenant       text        NOT NULL,
    -- the writer root: '' for a single writer, `worker-N` when each server worker has
    -- its own (then one tenant has one chain per worker)
    source       text        NOT NULL DEFAULT '',
    seq          bigint      NOT NULL,
    time         timestamptz NOT NULL,
    decision_id  text        NOT NULL,
    kind         text        NOT NULL,
    subject      text        NOT NULL,
    actor        text,
    action       text        NOT NULL,
    resource     text        NOT NULL,
    decision     text        NOT NULL,
    revision     bigint      NOT NULL,
    prev_hash    text        NOT NULL,
    hash         text        NOT NULL,
    line         text        NOT NULL,
    record       jsonb       NOT NULL,
    -- A key on a partitioned table must contain the partition column; (tenant, source,
    -- seq) alone is unique in practice because one entry has one time.
    PRIMARY KEY (tenant, source, seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX IF NOT EXISTS decision_log_tenant_time ON decision_log (tenant, time);
CREATE INDEX IF NOT EXISTS decision_log_decision_id ON decision_log (decision_id);
CREATE INDEX IF NOT EXISTS decision_log_subject ON decision_log (tenant, subject, time);
