-- Guards around the audit chain (V15), after a review: a link's position is positive (the verifier walks the chain
-- from 1), and the main tenant, which holds the installation's own trail (tenants created and deleted, key
-- operations), can be neither deleted nor replaced, whoever asks: its deletion would take that trail with it.
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_position CHECK (position > 0);

CREATE FUNCTION refuse_main_tenant_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the main tenant cannot be deleted' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER tenants_keep_main BEFORE DELETE ON tenants
    FOR EACH ROW WHEN (OLD.id = 1) EXECUTE FUNCTION refuse_main_tenant_delete();

-- No event is dated at infinity (such a time cannot be linked or compared with a clock). NOT VALID: no existing row
-- is scanned (none can hold one but by hand), every new one is checked.
ALTER TABLE audit_events ADD CONSTRAINT audit_events_time_finite CHECK (isfinite(occurred_at)) NOT VALID;
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_time_finite CHECK (isfinite(occurred_at)) NOT VALID;
