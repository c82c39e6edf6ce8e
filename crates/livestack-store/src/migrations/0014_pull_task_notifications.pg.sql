-- PostgreSQL only: relay tasks are part of the policy, so their writes
-- are announced like the other configuration tables' (migration 12).
-- Their run reports (pull_task_runs) are not configuration.
CREATE TRIGGER pull_tasks_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pull_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
