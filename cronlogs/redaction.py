"""Keep secrets out of log rows.

Every row goes through `redact()` before it is written: values under sensitive keys are
masked, and any configured secret (API keys, the cron secret) is cut out of free text such
as exception messages and tracebacks.
"""

import re
from urllib.parse import urlsplit

from django.conf import settings

from cronlogs.jobs import JOBS

REDACTED = "[REDACTED]"
SECRET_SETTINGS = (
    "CRON_SECRET",
    "DAILY_API_KEY",
    "STRIPE_SECRET_KEY",
    "SECRET_KEY",
    "EMAIL_HOST_PASSWORD",
    "SENTRY_DSN",
)
# A check-in URL's path is its credential (https://hc-ping.com/<uuid>); shorter paths are
# ordinary words ("/ping"), not secrets.
MIN_SECRET_PATH_LENGTH = 16
SENSITIVE_KEY = re.compile(
    r"secret|password|passwd|api[_-]?key|apikey|authorization|auth[_-]?token|access[_-]?token|cookie",
    re.IGNORECASE,
)
# Shapes of credentials that may arrive from elsewhere than our settings.
CREDENTIAL_PATTERNS = re.compile(
    r"(Bearer\s+)[^\s'\",]+|\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+", re.IGNORECASE
)


def configured_secrets():
    values = [getattr(settings, name, "") for name in SECRET_SETTINGS]
    values.extend(_ping_url_secrets())
    # Very short values would mask ordinary words; no real secret is that short.
    return sorted(
        {value for value in values if isinstance(value, str) and len(value) >= 6},
        key=len,
        reverse=True,
    )


def _ping_url_secrets():
    """Each job's CRON_PING_URL_<JOB>, and the path in it, which alone lets anyone ping."""
    for job in JOBS.values():
        url = getattr(settings, job.setting_name("PING_URL"), "")
        if not isinstance(url, str) or not url:
            continue
        yield url
        yield url.rstrip("/")
        path = urlsplit(url).path.strip("/")
        if len(path) >= MIN_SECRET_PATH_LENGTH:
            yield path


def redact_text(text, secrets=None):
    """`text` with every configured secret (`secrets`, read from settings if not given)
    and every credential-shaped word masked."""
    if not text:
        return text
    # PostgreSQL stores no NUL character (text or jsonb): one would make the row unwritable.
    text = text.replace("\x00", "\ufffd")
    for secret in configured_secrets() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return CREDENTIAL_PATTERNS.sub(
        lambda match: f"{match.group(1)}{REDACTED}" if match.group(1) else REDACTED, text
    )


def redact(value, secrets=None):
    """Return `value` (str, dict, list, scalar) with secrets masked; the input is not changed.

    The configured secrets are read once per call (a row's context holds dozens of
    strings, and a run writes thousands of rows), or passed in as `secrets`.
    """
    if secrets is None:
        secrets = configured_secrets()
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and SENSITIVE_KEY.search(key)
            else redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, secrets) for item in value]
    return value
