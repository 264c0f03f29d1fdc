"""`migrate` is a safe deploy step: reversible, indexes on Log built online.

Deploys run `manage.py migrate` while crontab keeps firing and `Log` holds millions of
rows.
"""

import pytest
from django.contrib.postgres.operations import AddIndexConcurrently as PostgresOnlyAddIndex
from django.db import IntegrityError, NotSupportedError, connection, migrations, models
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext

from cronlogs.migration_operations import AddIndexConcurrently
from cronlogs.models import ContextKey, Log

OUR_APPS = ("cronlogs", "bookings", "payouts")


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
