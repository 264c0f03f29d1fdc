"""Create and drop PostgreSQL databases beside the one Django uses (same server, same user).

For what needs a database of its own: the migrations test (a fresh database it migrates
from zero and back) and the benchmarks (`make bench` creates its database on first use).
"""

import sys
from contextlib import closing, suppress

import psycopg
from django.db import connection
from psycopg import sql


def maintenance_connection():
    """An autocommit connection to the `postgres` database of Django's server.

    CREATE and DROP DATABASE cannot run in a transaction, nor connected to the database
    they act on.
    """
    db = connection.settings_dict
    params = {
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
    }
    return psycopg.connect(
        dbname="postgres", autocommit=True, **{k: v for k, v in params.items() if v}
    )


def database_exists(name):
    with closing(maintenance_connection()) as maintenance:
        found = maintenance.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return found.fetchone() is not None


def create_database(name):
    with closing(maintenance_connection()) as maintenance:
        maintenance.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name):
    with closing(maintenance_connection()) as maintenance:
        maintenance.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database_if_missing(name):
    """Create `name` unless it exists; say so on stderr when it does."""
    if database_exists(name):
        return
    print(f"creating PostgreSQL database {name!r}", file=sys.stderr, flush=True)
    # Another process may create it between the check and here.
    with suppress(psycopg.errors.DuplicateDatabase):
        create_database(name)
