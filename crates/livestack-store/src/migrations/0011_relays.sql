-- Where each node serves its streams to the other nodes (edge relays:
-- host:port of its HTTP playback listener), and the cluster's settings:
-- the secret that authenticates relay pulls between nodes.
ALTER TABLE nodes ADD COLUMN relay TEXT NOT NULL DEFAULT '';
CREATE TABLE cluster_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
-- Which node owns each live stream (several nodes): the node holding its
-- push claims it when the push starts, bumping the epoch; a push on
-- another node takes the claim over and the first is told to end. A node
-- whose lease ran out checks its claims are still its own before it goes
-- on (fencing).
CREATE TABLE stream_claims (
    account_id  BIGINT  NOT NULL,
    app         TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    session     BIGINT  NOT NULL,
    epoch       BIGINT  NOT NULL,
    PRIMARY KEY (account_id, app, stream)
);
