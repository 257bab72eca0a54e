-- V001: events known to the pipeline. Safe to run twice (IF NOT EXISTS everywhere); the migration
-- runner also records applied versions in schema_migrations and applies each one in a transaction.

CREATE TABLE IF NOT EXISTS events (
    event_id        text        PRIMARY KEY
                                CHECK (event_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    home_team       text        NOT NULL CHECK (length(home_team) BETWEEN 1 AND 100),
    away_team       text        NOT NULL CHECK (length(away_team) BETWEEN 1 AND 100),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    -- supplier time (updated_at) of the newest update applied to any market of the event
    last_update_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS events_last_update_idx ON events (last_update_at DESC);
