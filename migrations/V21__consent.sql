-- Consent: a tenant's legal bases, its processing activities, and each user's agreement to a basis.
--
-- Legal bases and processing activities are the tenant's own texts (what it processes and why), not
-- personal data, and stay in clear. An agreement says something about a person, so it keeps in
-- clear only what must be queried, in a form that names no one: the basis (by id, so a rename
-- carries every agreement with it), the user's token, the status and the times. What identifies or
-- describes (the method, the reference code, who last modified it) is sealed with the user's own key
-- (associated data: tenant, kind `agreement`, the agreement's id), so forget-me leaves none of it
-- readable. An agreement recorded for an e-mail or phone before a user holds it is kept under that
-- value's blind index (never the value) and sealed with the tenant's record key (kind
-- `agreement_pending`) until UserCreate links it to the new user and re-seals it with the user's key.
CREATE TABLE legal_bases (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    brief         text NOT NULL,
    -- `deleted`: removed while agreements referred to it; kept (and its brief reserved) as what they
    -- referred to. A basis no agreement refers to is removed outright.
    status        text NOT NULL DEFAULT 'active',
    basistype     text NOT NULL DEFAULT 'consent',
    module        text,
    shortdesc     text,
    fulldesc      text,
    requiredmsg   text,
    requiredflag  boolean NOT NULL DEFAULT false,
    -- Whether the user may withdraw by itself; otherwise its withdrawal is a request for a DPO.
    usercontrol   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, brief),
    CONSTRAINT legal_bases_brief CHECK (brief ~ '^[a-z][a-z0-9-]{1,64}$'),
    CONSTRAINT legal_bases_status CHECK (status IN ('active', 'inactive', 'deleted')),
    CONSTRAINT legal_bases_type CHECK (basistype IN ('consent', 'contract', 'legal-requirement',
        'legitimate-interest', 'public-interest', 'vital-interest'))
);

CREATE TABLE agreements (
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    basis_id       bigint NOT NULL,
    -- The user; NULL while the agreement waits for a user holding `pending_field`.
    token          uuid,
    pending_field  text,
    pending_hash   bytea,
    -- yes, no (withdrawn or refused), expired (past final_at), revoked (by the tenant, or forget-me).
    status         text NOT NULL,
    sealed         bytea,
    start_at       timestamptz,
    final_at       timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, basis_id) REFERENCES legal_bases (tenant_id, id),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT agreements_status CHECK (status IN ('yes', 'no', 'expired', 'revoked')),
    CONSTRAINT agreements_someone CHECK ((token IS NULL) = (pending_hash IS NOT NULL)),
    CONSTRAINT agreements_pending CHECK ((pending_field IS NULL) = (pending_hash IS NULL)
        AND (pending_field IS NULL OR pending_field IN ('email', 'phone')))
);
CREATE UNIQUE INDEX agreements_of_user ON agreements (tenant_id, token, basis_id)
    WHERE token IS NOT NULL;
CREATE UNIQUE INDEX agreements_waiting ON agreements (tenant_id, pending_hash, pending_field, basis_id)
    WHERE token IS NULL;
CREATE INDEX agreements_by_basis ON agreements (tenant_id, basis_id, status);
CREATE INDEX agreements_due ON agreements (tenant_id, final_at)
    WHERE status = 'yes' AND final_at IS NOT NULL;

CREATE TABLE processing_activities (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    activity      text NOT NULL,
    title         text NOT NULL,
    script        text,
    fulldesc      text,
    applicableto  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, activity),
    CONSTRAINT processing_activities_name CHECK (activity ~ '^[a-z][a-z0-9-]{1,64}$')
);

CREATE TABLE processing_activity_bases (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    activity_id  bigint NOT NULL,
    basis_id     bigint NOT NULL,
    PRIMARY KEY (tenant_id, activity_id, basis_id),
    FOREIGN KEY (tenant_id, activity_id) REFERENCES processing_activities (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, basis_id) REFERENCES legal_bases (tenant_id, id) ON DELETE CASCADE
);

-- The history of a consent: every change of an agreement is an audit event whose target is
-- `agreement:<id>` (its sealed details carry the status and method before and after), listed by
-- AgreementGet in order, including what happened before the agreement was linked to its user.
CREATE INDEX audit_events_agreement ON audit_events (tenant_id, target, occurred_at)
    WHERE target LIKE 'agreement:%';

-- A user's withdrawal of an agreement it may not withdraw alone is a request for a DPO.
ALTER TABLE user_requests ADD COLUMN basis_id bigint;
ALTER TABLE user_requests ADD FOREIGN KEY (tenant_id, basis_id) REFERENCES legal_bases (tenant_id, id);
ALTER TABLE user_requests DROP CONSTRAINT user_requests_kind;
ALTER TABLE user_requests ADD CONSTRAINT user_requests_kind CHECK (kind IN
    ('change-profile', 'patch-profile', 'forget-me', 'change-app-data', 'withdraw-consent'));
ALTER TABLE user_requests ADD CONSTRAINT user_requests_basis
    CHECK ((kind = 'withdraw-consent') = (basis_id IS NOT NULL));
DROP INDEX user_requests_one_open;
CREATE UNIQUE INDEX user_requests_one_open
    ON user_requests (tenant_id, token, kind, (coalesce(appname, '')), (coalesce(basis_id, 0)))
    WHERE status = 'open';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['legal_bases', 'agreements', 'processing_activities',
                             'processing_activity_bases'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I
            USING (tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint)
            WITH CHECK (tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint)',
            t || '_tenant_isolation', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO bunker_app', t);
    END LOOP;
END $$;
