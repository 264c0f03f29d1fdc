"""Run every benchmark in bench/ (or those named on the command line) and print one table.

`make bench` runs them all against BENCH_PG_URL; `.venv/bin/python bench/run.py cleanup_logs`
runs one against the PostgreSQL database named by DATABASE_URL.
"""

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import print_table, setup_django  # noqa: E402


def main(names):
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("Benchmarks run against PostgreSQL: set DATABASE_URL (make bench does).")
    bench_dir = Path(__file__).resolve().parent
    modules = sorted(path.stem for path in bench_dir.glob("bench_*.py"))
    if names:
        known = {module.removeprefix("bench_") for module in modules}
        unknown = sorted(set(names) - known)
        if unknown:
            sys.exit(
                f"No benchmark called {', '.join(unknown)}; there are: {', '.join(sorted(known))}"
            )
        modules = [module for module in modules if module.removeprefix("bench_") in names]
    rows = []
    for module in modules:
        print(f"running {module} ...", file=sys.stderr, flush=True)
        done = importlib.import_module(f"bench.{module}").run()
        print_table(done)  # as each finishes, so a later failure loses nothing
        print(flush=True)
        rows.extend(done)
    print_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
