"""Bounded concurrency for the payout jobs: STRIPE_CONCURRENCY creators in flight.

Each creator's payouts are one task (its balance is read once and drawn on in order), and
tasks run on a small pool of threads, each with its own database connection (closed when
its task ends). With one worker the tasks run inline, in order, on the caller's connection.
Tasks return their outcomes; the caller tallies them in its own thread.
"""

from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def run_bounded(tasks, *, workers, run):
    """Run each of `tasks` (no-argument callables), at most `workers` at a time, and yield
    their results in the order given. A task that raises is re-raised when its result's
    turn comes, and the tasks not started by then never start; past the run's max runtime
    no new task starts."""
    if workers <= 1:
        for task in tasks:
            run.check_time()
            yield task()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payouts") as pool:
        pending = []
        try:
            for task in tasks:
                run.check_time()
                pending.append(pool.submit(_with_own_connection, task))
                if len(pending) >= workers * 2:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _with_own_connection(task):
    try:
        return task()
    finally:
        # A pool thread's connection is its own; leave nothing open behind it.
        connections.close_all()
