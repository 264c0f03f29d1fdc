"""Migration operations that keep `migrate` safe to run while the jobs keep writing."""

from django.db import NotSupportedError
from django.db.migrations import AddIndex


class AddIndexConcurrently(AddIndex):
    """AddIndex that builds the index without locking the table's writers on PostgreSQL.

    Use it for every index added to `Log` (or to any table big and busy enough that a
    write lock held for a whole index build would stall the jobs): deploys run `migrate`
    while crontab keeps firing and `Log` holds millions of rows, and a plain CREATE INDEX
    blocks every INSERT into it until the build ends. `makemigrations` writes `AddIndex`;
    replace it with this operation, in a migration of its own with `atomic = False`::

        from cronlogs.migration_operations import AddIndexConcurrently

        class Migration(migrations.Migration):
            atomic = False
            dependencies = [("cronlogs", "0002_log_admin_proxies")]
            operations = [
                AddIndexConcurrently(
                    model_name="log",
                    index=models.Index(ContextKey("roomId"), name="log_room_idx"),
                ),
            ]

    On PostgreSQL it runs CREATE INDEX CONCURRENTLY (and DROP INDEX CONCURRENTLY when
    unapplied): reads and writes go on during the build, which waits for the transactions
    already using the table and cannot run inside a transaction, hence `atomic = False`.
    A build that fails or is interrupted leaves an INVALID index behind; running the
    migration again drops it and builds afresh. Elsewhere (SQLite) it is a plain AddIndex.

    Not needed for the indexes of a new table (CreateModel): nothing uses it yet.
    Unlike `django.contrib.postgres.operations.AddIndexConcurrently`, it also runs on
    SQLite, so one migration serves both databases.
    """

    atomic = False

    def describe(self):
        return f"{super().describe()} (concurrently on PostgreSQL)"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _builds_concurrently(schema_editor, self):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if _invalid_index_exists(schema_editor, self.index.name):
                schema_editor.remove_index(model, self.index, concurrently=True)
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _builds_concurrently(schema_editor, self):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


def _builds_concurrently(schema_editor, operation):
    if schema_editor.connection.vendor != "postgresql":
        return False
    if schema_editor.connection.in_atomic_block:
        raise NotSupportedError(
            f"{operation.__class__.__name__} cannot run inside a transaction: "
            "set atomic = False on the migration."
        )
    return True


def _invalid_index_exists(schema_editor, name):
    """Whether a failed CREATE INDEX CONCURRENTLY left an unusable index called `name`."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(%s) AND NOT indisvalid",
            [schema_editor.quote_name(name)],
        )
        return cursor.fetchone() is not None
