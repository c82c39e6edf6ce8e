-- Which node wrote a push session or a recording span. At start-up a node
-- closes what it left open itself, never what another node sharing the
-- database has live. Rows from before have '' (one node then).
ALTER TABLE stream_sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE recording_spans ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX stream_sessions_by_node ON stream_sessions (node, ended_at);
