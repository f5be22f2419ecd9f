-- A user's versions, exact indexes and search grams no longer carry a foreign key to `users`.
--
-- Each key cost a check per inserted row (a query of its own inside PostgreSQL): ten per user created,
-- a third of PostgreSQL's time in a bulk UserCreateBulk (benchmark, BENCHMARKS.md). The server writes
-- these rows only in the statement that creates their user, or for a user it has just read in the same
-- transaction, and deletes them itself on forget-me; a deleted tenant's rows are deleted by TenantDelete
-- explicitly (they were the keys' cascade before).
ALTER TABLE user_versions DROP CONSTRAINT user_versions_tenant_id_token_fkey;
ALTER TABLE user_indexes DROP CONSTRAINT user_indexes_tenant_id_token_fkey;
ALTER TABLE user_search DROP CONSTRAINT user_search_tenant_id_token_fkey;
