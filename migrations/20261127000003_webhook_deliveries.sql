-- Every webhook delivery attempt: where, what came back, when.
CREATE TABLE webhook_deliveries (
    id          bigserial   PRIMARY KEY,
    message_id  text        NOT NULL,
    task_id     uuid        NOT NULL,
    attempt     integer     NOT NULL,
    url         text        NOT NULL,
    status      integer,
    duration_ms integer     NOT NULL,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id, created_at);
