-- Which binaries may serve on this schema (issue 20: rolling upgrades and rollbacks). A binary
-- serves on a schema newer than the newest migration it knows when `serves_from` is at most that
-- migration's version. A migration that only adds (a table, a nullable or defaulted column, an
-- index) leaves `serves_from` alone, so the previous release's pods stay ready while the new ones
-- roll out; a migration the previous binaries cannot serve on sets it to its own version, in the
-- migration itself (`UPDATE schema_compatibility SET serves_from = <its version>;`), and its
-- release notes say so. db/src/migrate.rs has a test that holds migrations to this.
CREATE TABLE schema_compatibility (
    only_row boolean PRIMARY KEY DEFAULT true CONSTRAINT schema_compatibility_one_row CHECK (only_row),
    serves_from integer NOT NULL CONSTRAINT schema_compatibility_positive CHECK (serves_from > 0)
);
-- V25 only adds: V24's binaries could serve on it (they refuse any newer schema, predating this table).
INSERT INTO schema_compatibility (serves_from) VALUES (24);
GRANT SELECT ON schema_compatibility TO bunker_app;
