"""Run manage.py or Python in a child process against the database the tests use."""

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from django.db import connection, connections

from cronlogs.locks import job_lock

PROJECT_DIR = Path(__file__).resolve().parent.parent


def database_url():
    """A DATABASE_URL naming the database the tests are using right now."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def run_manage(args, env, timeout=120):
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_manage(args, env):
    return subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def held_job_lock(job_name):
    """Hold a job's lock as another process would: on a connection of its own."""
    other = connections.create_connection("default")
    try:
        with job_lock(job_name, connection=other) as acquired:
            assert acquired, f"{job_name} was already locked"
            yield
    finally:
        other.close()
