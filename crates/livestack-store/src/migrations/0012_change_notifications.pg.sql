-- PostgreSQL only (SQLite has one server process, nobody to tell).
-- Every statement that changes a table the policy is built from announces
-- the change on the `livestack_changes` channel from inside its own
-- transaction: PostgreSQL delivers a NOTIFY when, and only when, the
-- transaction commits, so a committed write is always announced (even if
-- its node dies right after the commit) and a rolled-back one never is.
-- The payload is the writing connection's `livestack.origin` setting (the
-- writer's origin id, set when livestack connects; empty for psql), never
-- data: listeners reload from the tables, and the writer skips its own.
-- Identical payloads in one transaction are delivered once.
CREATE FUNCTION livestack_announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('livestack_changes', coalesce(current_setting('livestack.origin', true), ''));
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER certificates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON certificates
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER domain_certificates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domain_certificates
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER forbidden_streams_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON forbidden_streams
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER delayed_streams_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON delayed_streams
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER templates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON templates
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER template_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON template_rules
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
CREATE TRIGGER tasks_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION livestack_announce_change();
