-- A tenant's own request quota (issue 19), set by root only: `COUNT/s`, `COUNT/min`, `COUNT/h` or
-- `off`; NULL means the installation's default (BUNKER_RATE_TENANT). The grammar is the server's
-- (bunker_services::core::rate), so a value written by hand cannot be one the server misreads.
ALTER TABLE tenants
    ADD COLUMN rate_limit text
    CONSTRAINT tenants_rate_limit_grammar
        CHECK (rate_limit ~ '^(off|([1-9][0-9]{0,8}|1000000000)/(s|min|h))$');
