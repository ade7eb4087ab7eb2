-- Watch reads a revision in pages ordered by relationship (reads.CHANGES_WITHIN_SQL), so
-- that a revision of any size (a bulk load, a delete by filter) is read a page at a
-- time. On (tenant, created_rev) alone, every page read and sorted the whole revision
-- again: a replay cost the square of its size. The revision indexes take the key
-- columns after the revision; they begin as before, so every other reader of them
-- (ranges of revisions: the relationship index's catch-up, garbage collection) reads
-- them as it did.
--
-- Building them locks writes to `relationships` (reads go on) for as long as reading
-- the table takes; on a large table, run `authz migrate` at a quiet time.

DROP INDEX relationships_created_rev;
CREATE INDEX relationships_created_rev ON relationships (
    tenant, created_rev, resource_type, resource_id, relation, subject_type, subject_id,
    subject_relation
);

DROP INDEX relationships_deleted_rev;
CREATE INDEX relationships_deleted_rev ON relationships (
    tenant, deleted_rev, resource_type, resource_id, relation, subject_type, subject_id,
    subject_relation
) WHERE deleted_rev IS NOT NULL;
