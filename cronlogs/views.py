"""HTTP endpoints for schedulers and monitoring (SPEC §6, §9).

`POST /api/cron/<cronType>` runs a job when the request carries CRON_SECRET, as
`Authorization: Bearer <secret>` or `X-Cron-Secret: <secret>`; the query string is never
read. `GET` on the same URL (readiness) and `GET /api/cron/health` answer anyone with each
job's state and health; the details behind them (error texts, missing setting names, where
a stuck run runs) only a caller presenting the secret sees. `GET /api/cron/metrics` is the
Prometheus scrape, for the secret only (cronlogs.metrics). Every answer is JSON, errors and
refused methods included, except the metrics themselves.
"""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from cronlogs.alerts import review_alerts
from cronlogs.cron_secret import MAX_SECRET_LENGTH, secret_is_usable
from cronlogs.jobs import JOBS
from cronlogs.metrics import render_metrics
from cronlogs.runner import RunStatus, SkipReason, run_job
from cronlogs.status import all_job_statuses, job_status

logger = logging.getLogger(__name__)


def _as_bytes(value):
    # WSGI hands headers over as latin-1 decoded text; this gives back the bytes sent.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def presented_secrets(request):
    """The candidate secrets a request carries in its headers (never its query string)."""
    candidates = []
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        candidates.append(token.strip())
    if "X-Cron-Secret" in request.headers:
        candidates.append(request.headers["X-Cron-Secret"].strip())
    return [value for value in candidates if value and len(value) <= MAX_SECRET_LENGTH]


def secret_matches(request, secret):
    if not secret:
        return False
    expected = _as_bytes(secret)
    # Compare every candidate, with no early exit, in constant time per candidate.
    matched = False
    for candidate in presented_secrets(request):
        matched |= hmac.compare_digest(_as_bytes(candidate), expected)
    return matched


def answer(body, status=200):
    """A JSON answer. A 5xx here is the endpoint's answer (a job failed, a job is
    unhealthy), not a server error: Django would log it as one and email ADMINS for each,
    and a monitor polling every minute would flood them; the jobs' own alerts tell them."""
    response = JsonResponse(body, status=status)
    if status >= 500:
        response._has_been_logged = True
    return response


def _error(status, error, message, **extra):
    return answer({"success": False, "error": error, "message": message, **extra}, status)


def _method_not_allowed(request, allowed):
    response = _error(
        405,
        "method_not_allowed",
        f"{request.method} is not served here; use {' or '.join(allowed)}.",
    )
    response["Allow"] = ", ".join(allowed)
    return response


@csrf_exempt
def cron_job(request, cron_type):
    if request.method not in ("GET", "HEAD", "POST"):
        return _method_not_allowed(request, ["GET", "POST"])
    if cron_type not in JOBS:
        return _error(404, "unknown_job", f"No job called {cron_type!r}.", jobs=list(JOBS))
    if request.method != "POST":
        return answer(readiness(cron_type, detailed=secret_matches(request, settings.CRON_SECRET)))
    if not settings.CRON_SECRET:
        # Fail closed: without a configured secret nobody may start a job over HTTP.
        return _error(503, "not_configured", "CRON_SECRET is not set on the server.")
    if not secret_matches(request, settings.CRON_SECRET):
        logger.warning("Refused POST /api/cron/%s: missing or wrong secret", cron_type)
        return _error(
            401,
            "unauthorized",
            "Send the secret as 'Authorization: Bearer <CRON_SECRET>' or 'X-Cron-Secret'.",
        )
    try:
        result = run_job(cron_type, trigger="http")
    except DatabaseError:
        logger.exception("POST /api/cron/%s: database unavailable", cron_type)
        return _error(500, "database_unavailable", "The run could not be recorded.")
    body = result.to_dict()
    if result.status == RunStatus.SKIPPED:
        error = "paused" if result.skip_reason == SkipReason.PAUSED else "already_running"
        body.update(success=False, error=error)
        return answer(body, 409)
    return answer(body, 500 if result.failed else 200)


def readiness(cron_type, *, detailed):
    job = JOBS[cron_type]
    status = job_status(job)
    missing = job.missing_settings()
    usable_secret = secret_is_usable(settings.CRON_SECRET)
    body = {
        "cronType": cron_type,
        "ready": usable_secret and not missing,
        "httpTriggerEnabled": usable_secret,
        "method": "POST",
        "authentication": "Authorization: Bearer <CRON_SECRET> or X-Cron-Secret: <CRON_SECRET>",
        **status.to_dict(detailed=detailed),
    }
    if detailed:
        body["missingSettings"] = missing
    return body


@csrf_exempt
def cron_health(request):
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(request, ["GET"])
    detailed = secret_matches(request, settings.CRON_SECRET)
    statuses = all_job_statuses()
    review_alerts(statuses)
    culprits = [
        {"cronType": status.name, "state": status.state.value}
        | ({"problems": status.problems} if detailed else {})
        for status in statuses
        if not status.healthy
    ]
    return answer(
        {
            "healthy": not culprits,
            "culprits": culprits,
            "jobs": [status.to_dict(detailed=detailed) for status in statuses],
        },
        status=503 if culprits else 200,
    )


@csrf_exempt
def cron_metrics(request):
    """The jobs' Prometheus metrics, for a scraper presenting the cron secret (Prometheus'
    `authorization` config sends it as a Bearer token)."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(request, ["GET"])
    if not settings.CRON_SECRET:
        return _error(503, "not_configured", "CRON_SECRET is not set on the server.")
    if not secret_matches(request, settings.CRON_SECRET):
        logger.warning("Refused GET /api/cron/metrics: missing or wrong secret")
        response = _error(
            401,
            "unauthorized",
            "Send the secret as 'Authorization: Bearer <CRON_SECRET>' or 'X-Cron-Secret'.",
        )
        response["WWW-Authenticate"] = 'Bearer realm="callastar-jobs"'
        return response
    try:
        body, content_type = render_metrics(request.headers.get("Accept", ""))
    except DatabaseError:
        # An answer (Prometheus records the failed scrape), not a server error to email
        # ADMINS about every 15 seconds.
        logger.warning("GET /api/cron/metrics: database unavailable", exc_info=True)
        return _error(503, "database_unavailable", "The metrics could not be read.")
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
