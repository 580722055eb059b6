-- Audit events get the figures reports group and sum, as columns (the rest stays in `payload`).
ALTER TABLE audit_events
    ADD COLUMN provider          text,
    ADD COLUMN model             text,
    ADD COLUMN prompt_tokens     integer          NOT NULL DEFAULT 0,
    ADD COLUMN completion_tokens integer          NOT NULL DEFAULT 0,
    ADD COLUMN cost_usd          double precision NOT NULL DEFAULT 0,
    ADD COLUMN duration_ms       integer,
    ADD COLUMN cached            boolean          NOT NULL DEFAULT false,
    ADD COLUMN degraded          boolean          NOT NULL DEFAULT false,
    ADD COLUMN error_kind        text,
    ADD COLUMN client_ip         text;

-- No more indexes: every one costs each insert; reports by feature scan `audit_events_created`.
