-- The audit trail (DESIGN.md §9): a pre_request event, then success or error, per request.
-- Events carry their own id so a retried insert cannot duplicate a row.
CREATE TABLE audit_events (
    id             uuid PRIMARY KEY,
    request_id     text        NOT NULL,
    task_id        uuid,
    kind           text        NOT NULL CHECK (kind IN ('pre_request', 'success', 'error')),
    user_id        text        NOT NULL,
    role           text        NOT NULL,
    feature        text        NOT NULL,
    prompt_name    text,
    prompt_version text,
    payload        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_created ON audit_events (created_at);
CREATE INDEX audit_events_user_created ON audit_events (user_id, created_at DESC);
CREATE INDEX audit_events_task ON audit_events (task_id);
