"""The monitoring endpoints at 1,000,000 Log rows against the same at 10,000.

`GET /api/cron/health` (issue 10) and `GET /api/cron/metrics` (issue 13) read each job's
state from the Log table on every request; both should stay within 2x between the two
sizes. Each figure is the best of several full requests through Django's test client
(routing, the secret check, every query, rendering), with the cron secret presented, so
health answers with its details. The best, not the median: the two sizes are measured a
minute apart, and on a shared 2-core machine other processes shift a median by 2-4x
between them either way; the best of 21 is what the code itself costs.

As a figure no neighbour can disturb, the note gives the PostgreSQL buffers (8 kB pages)
one request's queries touch, from EXPLAIN (ANALYZE, BUFFERS) of each: a query whose cost
grew with the table would show it there. The tables are built the way the admin benchmark
builds them (its `insert`: a plausible mix of rows for every job, one every 2 seconds).
"""

import json
import os

from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from bench.bench_admin import BIG, SMALL, at_both_sizes
from bench.harness import Row, Timer, test_environment

REPEAT = int(os.environ.get("BENCH_REPEAT", "21"))
SECRET = "bench-cron-secret-0123456789abcdef0123"
ENDPOINTS = [
    ("health", "/api/cron/health"),
    ("metrics", "/api/cron/metrics"),
]


def time_endpoints(client):
    """{endpoint: (best seconds, buffers its queries touch, number of queries)}."""
    headers = {"Authorization": f"Bearer {SECRET}"}
    timings = {}
    for name, url in ENDPOINTS:
        response = client.get(url, headers=headers)  # warm: query plans, caches
        if response.status_code not in (200, 503):
            raise RuntimeError(f"{url} answered {response.status_code}")
        runs = []
        for _ in range(REPEAT):
            with Timer() as timer:
                client.get(url, headers=headers)
            runs.append(timer.seconds)
        with CaptureQueriesContext(connection) as queries:
            client.get(url, headers=headers)
        selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
        timings[name] = (min(runs), sum(map(buffers_touched, selects)), len(selects))
    return timings


def buffers_touched(sql):
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)


def run():
    test_environment()
    with override_settings(CRON_SECRET=SECRET, SECURE_SSL_REDIRECT=False, ADMINS=[]):
        client = Client()
        small, big = at_both_sizes(lambda: time_endpoints(client))
    return [
        Row(
            f"monitoring: {name}",
            f"{BIG:,} vs {SMALL:,} rows",
            big[name][0],
            small[name][0],
            note=(
                f"best of {REPEAT} full requests; goal < 2x; {big[name][2]} SELECTs touching "
                f"{big[name][1]} vs {small[name][1]} buffers"
            ),
        )
        for name, _ in ENDPOINTS
    ]
