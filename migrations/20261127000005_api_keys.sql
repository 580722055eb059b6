-- API keys for services (DESIGN.md §9): only a hash is stored; the key is shown once.
CREATE TABLE api_keys (
    id             uuid PRIMARY KEY,
    prefix         text        NOT NULL UNIQUE,
    hash           text        NOT NULL UNIQUE,
    name           text        NOT NULL,
    owner          text        NOT NULL,
    role           text        NOT NULL CHECK (role IN ('service', 'teacher')),
    quota          jsonb,
    -- The key's own webhook signing secret (whsec_…), if it has one; never shown after creation.
    webhook_secret text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    revoked_at     timestamptz
);

CREATE INDEX api_keys_owner ON api_keys (owner);
