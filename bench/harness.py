"""What every benchmark shares: Django setup, timing, peak memory and the result row.

A benchmark is a module `bench/bench_<name>.py` with a function `run()` returning a list
of `Row`s. Each row compares our code ("ours") with a baseline from the same run: one it
measures, or the bound a provider's latency or rate limit sets for the same work.
"""

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def setup_django():
    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callastar.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        # A fresh clone has no bench database yet.
        from tests.databases import create_database_if_missing

        create_database_if_missing(connection.settings_dict["NAME"])
    call_command("migrate", verbosity=0, interactive=False)


_TEST_ENVIRONMENT = []


def test_environment():
    """Django's test environment (test client responses with context, locmem email), set
    up once per process whichever benchmarks ask for it."""
    if not _TEST_ENVIRONMENT:
        from django.test.utils import setup_test_environment

        setup_test_environment()
        _TEST_ENVIRONMENT.append(True)


@dataclass
class Row:
    benchmark: str
    size: str
    ours_s: float
    baseline_s: float | None
    peak_mem_mb: float | None = None
    note: str = ""

    @property
    def ratio(self):
        return self.ours_s / self.baseline_s if self.baseline_s else None


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def run_manage(*args, env=None):
    """Run `manage.py args` in a child process; return (seconds, its peak RSS in MB, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
            cwd=PROJECT_DIR,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=err,
        )
        # wait4 gives this one child's resource usage, peak resident set size included.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{err.read()}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def print_table(rows):
    header = ("benchmark", "size", "ours (s)", "baseline (s)", "ratio", "peak mem (MB)", "note")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.benchmark,
                row.size,
                f"{row.ours_s:.3f}",
                "-" if row.baseline_s is None else f"{row.baseline_s:.3f}",
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                "-" if row.peak_mem_mb is None else f"{row.peak_mem_mb:.0f}",
                row.note,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
