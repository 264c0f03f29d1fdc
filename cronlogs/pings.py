"""Check-in pings in the Healthchecks.io style (also what Cronitor and many uptime tools take).

A job with `CRON_PING_URL_<JOB>` set tells that URL about each of its real runs:
`<url>/start` once the run holds its lock, then `<url>` when it succeeded (a degraded run
counts, and its body says so) or `<url>/fail` when it failed. The body is the run's one-line
summary and `?rid=<uuid>` names the run, so the service pairs a start with its end even when
two runs overlap (https://healthchecks.io/docs/measuring_script_run_time/).

A ping never changes a run's outcome and never takes longer than CRON_PING_TIMEOUT_SECONDS,
its one retry included. One that fails writes one WARNING `CRON_PING_FAILED` row, without
the URL: the URL is the credential (anyone holding it can report on the job), so it is
redacted everywhere (`cronlogs.redaction`).

The standard library's urllib is enough for one POST, and keeps the rule that only the
provider client modules import `requests`.
"""

import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError

from cronlogs import logger
from cronlogs.schedule import longest_gap, overdue_grace

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5.0
# A ping is a side note to a run; one that may take longer than this is a typo.
MAX_TIMEOUT_SECONDS = 60
ATTEMPTS = 2
# Healthchecks keeps the first 100 kB of a body; a summary line is far shorter.
MAX_BODY_BYTES = 10_000


class Ping:
    START = "start"
    SUCCESS = "success"
    FAIL = "fail"


SUFFIXES = {Ping.START: "/start", Ping.SUCCESS: "", Ping.FAIL: "/fail"}


def expected_check(job):
    """The Healthchecks check that fits `job`: its cron schedule (a "Cron" check, UTC) or
    its period (a "Simple" check: the longest gap between two scheduled runs), and a grace
    that lets a run start CRON_OVERDUE_GRACE_MINUTES late and take its whole max runtime
    (after /start, Healthchecks waits the grace time for the end ping)."""
    max_runtime = timedelta(minutes=math.ceil(job.max_runtime.total_seconds() / 60))
    return {
        "schedule": job.schedule,
        "timezone": "UTC",
        "period": longest_gap(job.schedule),
        "grace": max_runtime + overdue_grace(),
    }


def timeout_problem():
    """Why CRON_PING_TIMEOUT_SECONDS cannot be used, or None."""
    value = getattr(settings, "CRON_PING_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    try:
        valid = 0 < float(value) <= MAX_TIMEOUT_SECONDS
    except (TypeError, ValueError):
        valid = False
    if valid:
        return None
    return (
        f"CRON_PING_TIMEOUT_SECONDS={value!r}: expected a number of seconds greater than 0 and "
        f"at most {MAX_TIMEOUT_SECONDS}, e.g. CRON_PING_TIMEOUT_SECONDS=5"
    )


class PingFailed(Exception):
    """The ping service could not be reached, or did not answer 2xx."""


def ping_timeout():
    """The most one ping may take, its retry included (CRON_PING_TIMEOUT_SECONDS)."""
    try:
        seconds = float(getattr(settings, "CRON_PING_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_SECONDS
    return seconds if 0 < seconds <= MAX_TIMEOUT_SECONDS else DEFAULT_TIMEOUT_SECONDS


def ping_address(base_url, kind, run_id):
    """`base_url` + the suffix of `kind`, with `rid` (the run id as a UUID) in the query.

    A query string already in the base URL (e.g. Healthchecks' `?create=1`) is kept.
    """
    parts = urllib.parse.urlsplit(base_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.append(("rid", str(uuid.UUID(hex=run_id))))
    return urllib.parse.urlunsplit(
        parts._replace(
            path=parts.path.rstrip("/") + SUFFIXES[kind], query=urllib.parse.urlencode(query)
        )
    )


def send(address, body, *, timeout):
    """POST `body` to `address`, trying twice within `timeout` seconds in all.

    Returns the number of attempts made; raises PingFailed (without the address) when
    neither got a 2xx answer. A 4xx other than 429 is not retried: the URL is wrong.
    """
    data = body.encode("utf-8")[:MAX_BODY_BYTES]
    deadline = time.monotonic() + timeout
    for attempt in range(1, ATTEMPTS + 1):
        # Each attempt gets its share of what is left, so the last one is not starved.
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PingFailed(f"no answer within {timeout:g}s")
        request = urllib.request.Request(
            address,
            data=data,
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "callastar-jobs"},
        )
        try:
            with urllib.request.urlopen(request, timeout=remaining / (ATTEMPTS - attempt + 1)):
                return attempt
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code != 429:
                raise PingFailed(f"{error} (after {attempt} attempt(s))") from None
        except (OSError, ValueError) as exc:
            # URLError, timeouts, refused connections, resets; ValueError for a bad URL.
            error = _network_error(exc)
    raise PingFailed(f"{error} (after {ATTEMPTS} attempts)")


def _network_error(exc):
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, TimeoutError):
        return "timed out"
    return f"{type(reason).__name__}: {reason}"


def ping(job, kind, *, run_id, body):
    """Send `job` its `kind` of ping if it has a ping URL. Never raises: a failure is
    written as one WARNING row (and to the Python log when even that cannot be written)."""
    base_url = job.ping_url
    if not base_url:
        return
    timeout = ping_timeout()
    try:
        send(ping_address(base_url, kind, run_id), body, timeout=timeout)
    except PingFailed as exc:
        _record_failure(job, kind, run_id, base_url, str(exc))
    except Exception as exc:  # A ping must never be what breaks a run.
        _record_failure(job, kind, run_id, base_url, logger.error_message(exc))


def _record_failure(job, kind, run_id, base_url, error):
    host = urllib.parse.urlsplit(base_url).hostname or "?"
    try:
        logger.log_cron_ping_failed(
            job.name,
            kind,
            error,
            {"runId": run_id, "pingHost": host, "setting": job.setting_name("PING_URL")},
        )
    except DatabaseError:
        log.warning("%s: the %s ping to %s failed (%s)", job.name, kind, host, error)
