"""`migrate` is a safe deploy step: reversible, no table rewrite, indexes on Log built online.

Deploys run `manage.py migrate` while crontab keeps firing and `Log` holds millions of
rows. The round trip runs `manage.py migrate` in child processes against a fresh
PostgreSQL database of its own, so the test database is left alone.
"""

import os
import re
import secrets

import psycopg
import pytest
from django.contrib.postgres.operations import AddIndexConcurrently as PostgresOnlyAddIndex
from django.db import IntegrityError, NotSupportedError, connection, migrations, models
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext

from cronlogs.migration_operations import AddIndexConcurrently
from cronlogs.models import ContextKey, Log
from tests.databases import create_database, drop_database
from tests.processes import PROJECT_DIR, database_url, run_manage

OUR_APPS = ("cronlogs", "bookings", "payouts")
LOG_ROWS = 100_000


# --- Every migration has a way back -----------------------------------------------------


def database_operations(operations):
    for operation in operations:
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            yield from database_operations(operation.database_operations)
        else:
            yield operation


def our_migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [
        migration
        for (app, _name), migration in sorted(loader.disk_migrations.items())
        if app in OUR_APPS
    ]


def test_it_has_a_backward_path_for_every_migration():
    problems = []
    for migration in our_migrations():
        where = f"{migration.app_label}.{migration.name}"
        for operation in database_operations(migration.operations):
            if isinstance(operation, migrations.RunPython) and operation.reverse_code is None:
                problems.append(f"{where}: RunPython without reverse_code")
            elif isinstance(operation, migrations.RunSQL) and operation.reverse_sql is None:
                problems.append(f"{where}: RunSQL without reverse_sql")
            elif not operation.reversible:
                problems.append(f"{where}: {operation.describe()} is irreversible")

    # It should find a reverse for every operation (RunPython.noop counts as one).
    assert problems == []


def test_it_adds_indexes_to_log_only_concurrently():
    problems = []
    for migration in our_migrations():
        where = f"{migration.app_label}.{migration.name}"
        for operation in database_operations(migration.operations):
            if not isinstance(operation, migrations.AddIndex):
                continue
            if isinstance(operation, PostgresOnlyAddIndex):
                problems.append(f"{where}: use cronlogs' AddIndexConcurrently (SQLite too)")
            elif isinstance(operation, AddIndexConcurrently):
                if migration.atomic:
                    problems.append(f"{where}: AddIndexConcurrently needs atomic = False")
            elif operation.model_name == "log":
                problems.append(f"{where}: a plain AddIndex locks Log's writers")

    # It should build every index added to the existing Log table without a write lock.
    assert problems == []


# --- AddIndexConcurrently ---------------------------------------------------------------


def migration_adding(index):
    migration = migrations.Migration("9999_test_index", "cronlogs")
    migration.atomic = False
    migration.operations = [AddIndexConcurrently(model_name="log", index=index)]
    return migration


def apply(migration, state, *, atomic=None):
    """Apply `migration` as `migrate` would: in a transaction only if it is atomic."""
    with connection.schema_editor(atomic=migration.atomic if atomic is None else atomic) as editor:
        migration.apply(state.clone(), editor)


def unapply(migration, state):
    with connection.schema_editor(atomic=migration.atomic) as editor:
        migration.unapply(state, editor)


def log_indexes():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Log._meta.db_table)
    return {name for name, details in constraints.items() if details["index"]}


def index_is_valid(name):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            [connection.ops.quote_name(name)],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_it_adds_an_index_to_log_and_removes_it_again():
    Log.objects.create(type="CRON_RUN", status="SUCCESS", message="a row to index")
    migration = migration_adding(models.Index(ContextKey("roomId"), name="log_test_room_idx"))
    before = MigrationLoader(connection).project_state()

    with CaptureQueriesContext(connection) as forwards:
        apply(migration, before)
    try:
        # It should build the index, CONCURRENTLY (outside a transaction) on PostgreSQL.
        assert "log_test_room_idx" in log_indexes()
        created = [q["sql"] for q in forwards.captured_queries if "CREATE INDEX" in q["sql"]]
        concurrently = connection.vendor == "postgresql"
        assert len(created) == 1 and ("CONCURRENTLY" in created[0]) == concurrently
        if concurrently:
            assert index_is_valid("log_test_room_idx")
    finally:
        with CaptureQueriesContext(connection) as backwards:
            unapply(migration, before)

    # It should drop it when unapplied, concurrently too on PostgreSQL.
    assert "log_test_room_idx" not in log_indexes()
    dropped = [q["sql"] for q in backwards.captured_queries if "DROP INDEX" in q["sql"]]
    assert len(dropped) == 1 and ("CONCURRENTLY" in dropped[0]) == concurrently


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_build_concurrently_inside_a_transaction():
    migration = migration_adding(models.Index(ContextKey("roomId"), name="log_test_room_idx"))
    before = MigrationLoader(connection).project_state()

    # It should name the fix (atomic = False on the migration) before PostgreSQL refuses.
    with pytest.raises(NotSupportedError, match="set atomic = False on the migration"):
        apply(migration, before, atomic=True)
    assert "log_test_room_idx" not in log_indexes()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_rebuilds_an_index_that_a_failed_concurrent_build_left_invalid():
    for message in ("first", "second"):
        Log.objects.create(type="CRON_RUN", status="SUCCESS", message=message)
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        # Two rows of the same type: the unique build fails and leaves an INVALID index.
        cursor.execute('CREATE UNIQUE INDEX CONCURRENTLY log_test_type_idx ON "Log" (type)')
    assert not index_is_valid("log_test_type_idx")
    migration = migration_adding(models.Index(fields=["type"], name="log_test_type_idx"))
    before = MigrationLoader(connection).project_state()

    apply(migration, before)
    try:
        # It should drop the leftover and build a valid index, so a rerun of a failed
        # deploy succeeds.
        assert index_is_valid("log_test_type_idx")
    finally:
        unapply(migration, before)


# --- A round trip with 100k Log rows, in a database of its own ------------------------------

INSERT_LOG_ROWS = """
INSERT INTO "Log" (type, status, level, message, context, error, "createdAt")
SELECT 'CRON_RUN', 'SUCCESS', (ARRAY['INFO', 'WARNING', 'ERROR', 'CRITICAL'])[n %% 4 + 1],
       'Cron job completed: cleanup-logs (row ' || n || ')',
       jsonb_build_object('cronType', 'cleanup-logs', 'bookingId', (n %% 500)::text),
       NULL, now() - make_interval(mins => n)
FROM generate_series(1, %s) AS n
"""
LOG_FINGERPRINT = """
SELECT count(*), sum(id), count(*) FILTER (WHERE context->>'cronType' = 'cleanup-logs'),
       count(DISTINCT level)
FROM "Log"
"""
LOG_RELFILENODE = """SELECT relfilenode FROM pg_class WHERE oid = '"Log"'::regclass"""


@pytest.fixture
def fresh_database():
    """A new, empty PostgreSQL database on the tests' server; dropped afterwards."""
    name = f"callastar_migrations_{secrets.token_hex(4)}"
    create_database(name)
    try:
        yield f"{database_url().rsplit('/', 1)[0]}/{name}"
    finally:
        drop_database(name)


def migrate(url, *args):
    """`manage.py migrate args` against `url`; return the migrations it applied or unapplied."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PYTHONPATH": str(PROJECT_DIR),
        "DJANGO_SETTINGS_MODULE": "callastar.settings",
    }
    result = run_manage(["migrate", "--noinput", *args], env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = re.findall(r"^\s*(?:Applying|Unapplying) (\S+)\.\.\. (\S+)", result.stdout, re.M)
    assert all(outcome == "OK" for _, outcome in steps), result.stdout
    return {name for name, _ in steps}


def query(url, sql, params=()):
    """Run `sql` on `url`; its rows, or None for a statement that returns none."""
    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


@pytest.mark.postgres_only
def test_it_migrates_100k_log_rows_to_the_latest_migration_and_back_to_zero(fresh_database):
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    every_migration = {f"{app}.{name}" for app, name in graph.nodes}
    first_with_log = migrate(fresh_database, "cronlogs", "0001_initial")
    query(fresh_database, INSERT_LOG_ROWS, [LOG_ROWS])
    rows_before = query(fresh_database, LOG_FINGERPRINT)
    relfilenode_before = query(fresh_database, LOG_RELFILENODE)

    applied = first_with_log | migrate(fresh_database)

    # It should apply every migration, keep every row and never rewrite the Log table
    # (a rewrite gives the table a new file, a new relfilenode).
    assert applied == every_migration
    assert rows_before[0][0] == LOG_ROWS
    assert query(fresh_database, LOG_FINGERPRINT) == rows_before
    assert query(fresh_database, LOG_RELFILENODE) == relfilenode_before, "Log was rewritten"
    recorded = query(fresh_database, "SELECT app || '.' || name FROM django_migrations")
    assert {name for (name,) in recorded} == every_migration

    unapplied = set()
    for app in sorted({app for app, _ in graph.nodes}):
        unapplied |= migrate(fresh_database, app, "zero")

    # It should unapply every migration, leaving no table but Django's own record.
    assert unapplied == every_migration
    assert query(fresh_database, "SELECT count(*) FROM django_migrations") == [(0,)]
    tables = query(fresh_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("django_migrations",)]
