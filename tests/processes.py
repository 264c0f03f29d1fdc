"""Run manage.py or Python in a child process against the database the tests use."""

import os
import subprocess
import sys
import time
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


def wait_for_start_signal(timeout=60):
    """In a child started by `race()`: say it is ready, then wait for the common start."""
    Path(os.environ["RACE_READY_FILE"]).touch()
    go, deadline = Path(os.environ["RACE_GO_FILE"]), time.monotonic() + timeout
    while not go.exists():
        assert time.monotonic() < deadline, "no start signal"
        time.sleep(0.001)


def race(code, envs, workdir, timeout=120, args=None):
    """Run `python -c code` once per environment in `envs` (with the command-line
    arguments in `args`, one list per child), released at the same moment.

    The children call `wait_for_start_signal()` once Django is set up (start-up takes
    different times), so the work itself starts together. Returns each child's
    (returncode, stdout, stderr).
    """
    go = Path(workdir) / "go"
    ready = [Path(workdir) / f"ready-{index}" for index in range(len(envs))]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, *child_args],
            env={**env, "RACE_READY_FILE": str(flag), "RACE_GO_FILE": str(go)},
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env, flag, child_args in zip(envs, ready, args or [[]] * len(envs), strict=True)
    ]
    try:
        deadline = time.monotonic() + timeout
        while not all(flag.exists() for flag in ready):
            assert all(child.poll() is None for child in children), "a child died starting"
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.01)
        go.touch()
        outputs = [child.communicate(timeout=timeout) for child in children]
    finally:
        for child in children:
            child.kill()
    return [
        (child.returncode, out, err) for child, (out, err) in zip(children, outputs, strict=True)
    ]


def refused_in_one_line(variable, env, command=("check",)):
    """Run `manage.py command` with `env`; check it refused to start, without a traceback,
    in one line naming `variable`, and return that line."""
    finished = run_manage(list(command), env)
    assert finished.returncode == 1, finished
    assert "Traceback" not in finished.stderr
    named = [line for line in finished.stderr.splitlines() if variable in line]
    assert len(named) == 1, finished.stderr
    return named[0]
