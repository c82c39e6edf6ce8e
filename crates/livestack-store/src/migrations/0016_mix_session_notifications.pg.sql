-- PostgreSQL only: mix sessions are part of the policy, so their writes
-- are announced like the other configuration tables' (migration 12).
CREATE TRIGGER mix_sessions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mix_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
