-- V002: odds read models written by odds-processor and read by odds-service.
--   odds_current: one row per (event_id, market), replaced only by a newer version.
--   odds_history: every applied (event_id, market, version) exactly once, append-only.

CREATE TABLE IF NOT EXISTS odds_current (
    event_id    text        NOT NULL REFERENCES events (event_id),
    market      text        NOT NULL CHECK (market ~ '^[a-z0-9_]{1,32}$'),
    home_team   text        NOT NULL,
    away_team   text        NOT NULL,
    odds        jsonb       NOT NULL,
    status      text        NOT NULL CHECK (status IN ('open', 'suspended')),
    version     bigint      NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL,
    source      text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, market)
);

CREATE TABLE IF NOT EXISTS odds_history (
    id          bigserial   PRIMARY KEY,
    event_id    text        NOT NULL,
    market      text        NOT NULL,
    version     bigint      NOT NULL CHECK (version >= 1),
    odds        jsonb       NOT NULL,
    status      text        NOT NULL CHECK (status IN ('open', 'suspended')),
    updated_at  timestamptz NOT NULL,
    source      text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT odds_history_once UNIQUE (event_id, market, version)
);

-- History reads are "newest first for one market"; the unique index above serves them
-- backwards, this one serves "everything for one event by time".
CREATE INDEX IF NOT EXISTS odds_history_event_time_idx ON odds_history (event_id, applied_at DESC);

-- The version-guarded upsert, so every writer gets the rule right: the row changes only when
-- the incoming version is newer. Returns true when the update won.
CREATE OR REPLACE FUNCTION upsert_odds_current(
    p_event_id text, p_market text, p_home_team text, p_away_team text, p_odds jsonb,
    p_status text, p_version bigint, p_updated_at timestamptz, p_source text
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    won boolean;
BEGIN
    INSERT INTO odds_current AS c
        (event_id, market, home_team, away_team, odds, status, version, updated_at, source, applied_at)
    VALUES
        (p_event_id, p_market, p_home_team, p_away_team, p_odds, p_status, p_version, p_updated_at, p_source, now())
    ON CONFLICT (event_id, market) DO UPDATE
        SET home_team = EXCLUDED.home_team, away_team = EXCLUDED.away_team, odds = EXCLUDED.odds,
            status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
            source = EXCLUDED.source, applied_at = EXCLUDED.applied_at
        WHERE c.version < EXCLUDED.version
    RETURNING true INTO won;
    RETURN coalesce(won, false);
END;
$$;
