-- Audit payloads are written once and read back whole, never searched inside: `json` keeps
-- the text as it was written (key order included) and costs an insert a syntax check instead
-- of building the binary `jsonb` form.
ALTER TABLE audit_events ALTER COLUMN payload DROP DEFAULT;
ALTER TABLE audit_events ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE audit_events ALTER COLUMN payload SET DEFAULT '{}'::json;
