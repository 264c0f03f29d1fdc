"""Deployment checks (`manage.py check --deploy`): settings that run, yet quietly fail the
people who rely on the jobs. Each is a warning; `--fail-level WARNING` makes it fatal.

A value that cannot work at all (a rate of 0, an unknown EMAIL_URL scheme) is refused
earlier, by `callastar.config` while the settings load."""

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Warning, register

from cronlogs.cron_secret import secret_weaknesses

UNDELIVERED_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "console",
    "django.core.mail.backends.locmem.EmailBackend": "locmem",
    "django.core.mail.backends.dummy.EmailBackend": "dummy",
    "django.core.mail.backends.filebased.EmailBackend": "file",
}


@register(deploy=True)
def check_email_is_delivered(app_configs, **kwargs):
    backend = UNDELIVERED_EMAIL_BACKENDS.get(settings.EMAIL_BACKEND)
    if settings.DEBUG or backend is None:
        return []
    return [
        Warning(
            f"Email goes to the {backend} backend while DEBUG is off: reminders are logged "
            "as sent and never delivered, and ADMINS hear nothing.",
            hint="Set EMAIL_URL, e.g. EMAIL_URL=smtp+tls://user:password@smtp.example.com:587",
            id="callastar.W001",
        )
    ]


@register(deploy=True)
def check_app_url_is_public(app_configs, **kwargs):
    host = urlsplit(settings.APP_URL).hostname or ""
    if not is_local_host(host):
        return []
    return [
        Warning(
            f"APP_URL points at {host}: the links in reminder emails lead nowhere.",
            hint="Set APP_URL to the web app's public address, e.g. https://callastar.com",
            id="callastar.W002",
        )
    ]


@register(deploy=True)
def check_cron_secret_is_strong(app_configs, **kwargs):
    secret = settings.CRON_SECRET
    weaknesses = secret_weaknesses(secret)
    if secret and not weaknesses:
        return []
    problem = (
        f"CRON_SECRET is weak: {', '.join(weaknesses)}."
        if secret
        else "CRON_SECRET is not set: POST /api/cron/<job> answers 503 to every scheduler."
    )
    return [
        Warning(
            problem,
            hint='Set CRON_SECRET to python -c "import secrets; print(secrets.token_urlsafe(32))"',
            id="callastar.W003",
        )
    ]


@register(deploy=True)
def check_admins_are_set(app_configs, **kwargs):
    if settings.ADMINS:
        return []
    return [
        Warning(
            "ADMINS is empty: nobody is emailed when a job starts failing or recovers.",
            hint="Set ADMINS, e.g. ADMINS=Ops <ops@example.com>",
            id="callastar.W004",
        )
    ]


@register(deploy=True)
def check_database_is_shared(app_configs, **kwargs):
    engine = settings.DATABASES["default"]["ENGINE"]
    if settings.DEBUG or not engine.endswith("sqlite3"):
        return []
    return [
        Warning(
            "The database is SQLite while DEBUG is off: the job lock covers one machine only "
            "and writers wait for each other.",
            hint="Set DATABASE_URL=postgres://user:password@host:5432/name",
            id="callastar.W005",
        )
    ]


def is_local_host(host):
    """localhost, a *.localhost name, a loopback or unspecified address (127.0.0.1, ::1)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
