"""What every benchmark shares: Django setup, timing, peak memory and the result row.

A benchmark is a module `bench/bench_<name>.py` with a function `run()` returning a list
of `Row`s. Each row compares our code ("ours") with a baseline measured in the same run.
"""

import os
import resource
import subprocess
import sys
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

    call_command("migrate", verbosity=0, interactive=False)


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
    """Run `manage.py args` in a child process; return (seconds, peak RSS in MB, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{stderr}")
    # ru_maxrss of the children reaped so far is the largest child's; run one at a time.
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kb / 1024, stdout


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
