-- One row per finished task (inline or queued): what ran, for whom, with what outcome.
CREATE TABLE task_history (
    id                uuid PRIMARY KEY,
    request_id        text        NOT NULL,
    user_id           text        NOT NULL,
    role              text        NOT NULL,
    feature           text        NOT NULL,
    prompt_name       text        NOT NULL,
    prompt_version    text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('succeeded', 'failed', 'cancelled', 'dead')),
    attempts          integer     NOT NULL DEFAULT 1,
    provider          text,
    model             text,
    degraded          boolean     NOT NULL DEFAULT false,
    cached            boolean     NOT NULL DEFAULT false,
    prompt_tokens     integer     NOT NULL DEFAULT 0,
    completion_tokens integer     NOT NULL DEFAULT 0,
    error_kind        text,
    error_message     text,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz NOT NULL
);

CREATE INDEX task_history_user_created ON task_history (user_id, created_at DESC);
CREATE INDEX task_history_feature_created ON task_history (feature, created_at DESC);
