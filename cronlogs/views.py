"""HTTP endpoints for schedulers and monitoring (SPEC §6).

`POST /api/cron/<cronType>` runs a job when the request carries CRON_SECRET, as
`Authorization: Bearer <secret>` or `X-Cron-Secret: <secret>`; the query string is never
read. `GET` on the same URL and `GET /api/cron/health` answer without a secret and never
include one.
"""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from cronlogs.jobs import JOBS
from cronlogs.runner import RunStatus, run_job
from cronlogs.status import REQUIRED_SETTINGS, all_job_statuses, job_status

logger = logging.getLogger(__name__)

# Longer than any sane secret; anything bigger is refused before it is compared.
MAX_SECRET_LENGTH = 512


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
    expected = _as_bytes(secret)
    # Compare every candidate, with no early exit, in constant time per candidate.
    matched = False
    for candidate in presented_secrets(request):
        matched |= hmac.compare_digest(_as_bytes(candidate), expected)
    return matched


def _error(status, error, message, **extra):
    return JsonResponse(
        {"success": False, "error": error, "message": message, **extra}, status=status
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def cron_job(request, cron_type):
    if cron_type not in JOBS:
        return _error(404, "unknown_job", f"No job called {cron_type!r}.", jobs=list(JOBS))
    if request.method == "GET":
        return JsonResponse(readiness(cron_type))
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
        body.update(
            success=False,
            error="already_running",
            message=f"{cron_type} is already running; this request did nothing.",
        )
        return JsonResponse(body, status=409)
    return JsonResponse(body, status=500 if result.failed else 200)


def readiness(cron_type):
    status = job_status(JOBS[cron_type])
    missing = [
        name for name in REQUIRED_SETTINGS.get(cron_type, ()) if not getattr(settings, name, "")
    ]
    return {
        "cronType": cron_type,
        "ready": bool(settings.CRON_SECRET) and not missing,
        "httpTriggerEnabled": bool(settings.CRON_SECRET),
        "missingSettings": missing,
        "method": "POST",
        "authentication": "Authorization: Bearer <CRON_SECRET> or X-Cron-Secret: <CRON_SECRET>",
        **status.to_dict(),
    }


@require_GET
def cron_health(request):
    statuses = [status.to_dict() for status in all_job_statuses()]
    culprits = [
        {"cronType": status["cronType"], "problems": status["problems"]}
        for status in statuses
        if not status["healthy"]
    ]
    return JsonResponse(
        {"healthy": not culprits, "culprits": culprits, "jobs": statuses},
        status=503 if culprits else 200,
    )
