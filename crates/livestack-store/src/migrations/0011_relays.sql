-- Where each node serves its streams to the other nodes (edge relays:
-- host:port of its HTTP playback listener), and the cluster's settings:
-- the secret that authenticates relay pulls between nodes.
ALTER TABLE nodes ADD COLUMN relay TEXT NOT NULL DEFAULT '';
CREATE TABLE cluster_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
