-- PostgreSQL only: pending inserts are part of the policy (the relay jobs
-- read them from it), so their writes are announced (migration 12).
CREATE TRIGGER pull_task_inserts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pull_task_inserts
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
