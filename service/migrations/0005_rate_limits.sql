-- Request counters of the rate limits (login, register, import; per client and per account), kept
-- here so every worker and replica of the tenant counts together. One row per limited action and
-- subject: the hits of the current fixed window, which starts with the first hit and ends at
-- window_ends_at. A hit after that starts a new window; the app deletes ended windows now and then.

CREATE TABLE rate_limits (
    -- What is limited and by whom: 'login:client', 'login:account', 'register:client', ...
    action         text        NOT NULL,
    -- The client address (an IPv6 client's /64), the normalised username, or the user id.
    subject        text        NOT NULL,
    hits           bigint      NOT NULL,
    window_ends_at timestamptz NOT NULL,
    PRIMARY KEY (action, subject)
);
-- The purge of ended windows.
CREATE INDEX rate_limits_window_ends_idx ON rate_limits (window_ends_at);
