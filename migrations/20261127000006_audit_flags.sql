-- Two more audit event kinds (issue 10): `flag` (moderation flags on a request's input) and
-- `guard` (the hint guard refused a generated hint).
ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_kind_check
    CHECK (kind IN ('pre_request', 'success', 'error', 'flag', 'guard'));
-- Teachers list flags newest first (GET /v1/admin/flags).
CREATE INDEX audit_events_flags ON audit_events (created_at DESC, id DESC) WHERE kind = 'flag';
