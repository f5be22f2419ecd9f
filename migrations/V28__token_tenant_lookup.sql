-- The /v1 API (issue 22) has no tenant concept: a /v1 request runs in the tenant its token belongs
-- to. That lookup runs under row-level security as SharedRecordGet's does: its transaction sets
-- `bunker.token_hash` (transaction-local) to the SHA-256 of the token it was given, with no tenant
-- set, and this policy shows that one row and nothing else. Holding the token is what shows its row:
-- no listing, no other row, no write. Additive: the previous release serves on it.
CREATE POLICY access_tokens_by_holder ON access_tokens FOR SELECT
    USING (token_hash = decode(NULLIF(current_setting('bunker.token_hash', true), ''), 'hex'));
