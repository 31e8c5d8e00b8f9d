-- A least-privilege Postgres role for the reconciler's runs.
--
-- Runs and the read commands (`reconcile`, `reconcile runs`, `reconcile log`, `reconcile check`)
-- connect as this role through DATABASE_URL. `reconcile migrate` is run by the owner of the
-- database (or of the schemas), never by this role: it has no DDL rights at all.
--
-- Run this file as the owner after `reconcile migrate`, e.g.
--     psql "$OWNER_DATABASE_URL" -f docs/least-privilege.sql
-- and choose your own password. When a later migration adds a table, grant on it the same way.
--
-- Not needed, so not granted:
--   * CONNECT on the database and USAGE on schema public: PUBLIC has both by default. If your
--     database revokes them, add `GRANT CONNECT ON DATABASE <name>` and `GRANT USAGE ON SCHEMA
--     public` for the role.
--   * Advisory locks (pg_try_advisory_lock, pg_advisory_unlock): callable by every role.
--   * Sequences: the tables' keys are identity columns, whose sequences an INSERT into the table
--     may use without a grant of its own (unlike `serial` columns).
--   * The `updated_at` trigger function: executable by PUBLIC, and triggers run it regardless.
--   * CREATE on any schema, TRUNCATE, REFERENCES, TRIGGER: never.

CREATE ROLE reconciler_app LOGIN PASSWORD 'change-me';

GRANT USAGE ON SCHEMA reconciler TO reconciler_app;

-- Read only: the schema version (checked before every run) and the install id.
GRANT SELECT ON reconciler.alembic_version, reconciler.meta TO reconciler_app;

-- Run history, pull watermarks and what runs keep of each remote (schema, clock offset) are
-- written and updated, never deleted.
GRANT SELECT, INSERT, UPDATE ON reconciler.runs, reconciler.watermarks, reconciler.remote_state
    TO reconciler_app;

-- Sync state is replaced per record; failures are cleared when a record goes through.
GRANT SELECT, INSERT, UPDATE, DELETE ON reconciler.sync_state, reconciler.failures
    TO reconciler_app;

-- The change log is append-only; a run deletes only entries past the retention period.
GRANT SELECT, INSERT, DELETE ON reconciler.change_log TO reconciler_app;

-- The mapped business tables: read, insert pulled records, update fields. Never DELETE: a record
-- deleted remotely is only marked (remote_deleted_at). UPDATE also covers SELECT ... FOR UPDATE.
GRANT SELECT, INSERT, UPDATE ON public.leads, public.rep_progressions TO reconciler_app;
