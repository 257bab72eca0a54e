-- V003: the platform's status overlay per feed, written by odds-processor from the feed
-- heartbeats. While a feed is suspended, every market whose source is that feed is shown
-- suspended (reason feed_down) by odds-service; supplier versions are never touched. Kept here
-- so that a restart of any service during an outage keeps the markets suspended.

CREATE TABLE IF NOT EXISTS feed_status (
    feed        text        PRIMARY KEY CHECK (length(feed) BETWEEN 1 AND 64),
    state       text        NOT NULL CHECK (state IN ('open', 'suspended')),
    reason      text,
    detail      text,
    since       timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
