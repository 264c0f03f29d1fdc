"""Shared fixtures: model factories, a fake job, recorded runs, a real SMTP server,
Daily and Stripe at their HTTP seam, and subprocess helpers."""

import itertools
import os
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.models import Booking, Creator
from cronlogs import logger
from cronlogs.jobs import JOBS, Job
from cronlogs.models import Log
from cronlogs.work import JobRun
from payouts.models import Payout
from tests.processes import PROJECT_DIR, database_url
from tests.smtp_sink import running_smtp_sink

_sequence = itertools.count(1)


def pytest_collection_modifyitems(config, items):
    vendor = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only behaviour; this run uses SQLite")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_lock_dir(tmp_path, settings):
    settings.CRON_LOCK_DIR = tmp_path / "locks"


@pytest.fixture(autouse=True)
def _one_creator_in_flight(settings):
    # Payout workers on threads have database connections of their own, which cannot see
    # a test's uncommitted rows: tests of concurrency use transaction=True and raise this.
    settings.STRIPE_CONCURRENCY = 1


@pytest.fixture(autouse=True)
def _plain_http(settings):
    # Production sits behind TLS (SECURE_SSL_REDIRECT); the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def now():
    return timezone.now()


def job_run(now=None, *, dry_run=False, **kwargs):
    """A JobRun as the runner would hand it to a service (no max runtime by default)."""
    return JobRun(now=now or timezone.now(), dry_run=dry_run, **kwargs)


def record_run(job, *, ago, failed=False, items=4, duration=2500, trigger="cron", **context):
    """Write the finished-run row a run of `job` that started `ago` would have written."""
    started = timezone.now() - ago
    context = {"startTime": started.isoformat(), "trigger": trigger, **context}
    if failed:
        context.setdefault("duration", duration)
        row = logger.log_cron_error(job, RuntimeError("Daily API down"), context)
    else:
        row = logger.log_cron_run(job, items, duration, context)
    Log.objects.filter(pk=row.pk).update(created_at=started)
    row.refresh_from_db()
    return row


def job_command(job_name):
    """The management command of `job_name` (for jobs registered only in tests)."""
    from cronlogs.commands import JobCommand

    return type("Command", (JobCommand,), {"job_name": job_name})()


# What the fake job does on its next run; the `fake_job` fixture resets it.
FAKE_JOB = {}


def run_fake_job(run):
    """The service of the job `fake-job` (see the `fake_job` fixture)."""
    FAKE_JOB["runs"] += 1
    FAKE_JOB["last_run"] = run
    run.stats.update(FAKE_JOB["stats"])
    run.stats["itemsProcessed"] = FAKE_JOB["items"]
    for outcome, error in FAKE_JOB["outcomes"]:
        run.count(outcome, error)
    if FAKE_JOB["during"]:
        FAKE_JOB["during"](run)
    if FAKE_JOB["error"]:
        raise FAKE_JOB["error"]


@pytest.fixture
def fake_job(monkeypatch):
    """Register a job `fake-job` (every 5 minutes, max runtime 4 min) and return what it
    does on a run, for the test to set: `items` processed, `stats`, item `outcomes`
    ([(ItemOutcome, error)]), a function called `during` the run, and an `error` raised."""
    FAKE_JOB.clear()
    FAKE_JOB.update(runs=0, items=3, stats={"widgets": 3}, outcomes=[], during=None, error=None)
    job = Job(
        name="fake-job",
        service="tests.conftest.run_fake_job",
        description="A job for tests.",
        default_schedule="*/5 * * * *",
        default_max_runtime_minutes=4,
    )
    monkeypatch.setitem(JOBS, "fake-job", job)
    return FAKE_JOB


CRON_TEST_SECRET = "s3cr3t-cron-value-for-tests-0123456789"


@pytest.fixture
def cron_secret(settings):
    """Set CRON_SECRET; returns the headers that present it."""
    settings.CRON_SECRET = CRON_TEST_SECRET
    return {"X-Cron-Secret": CRON_TEST_SECRET}


def post_admin_action(client, changelist, action, objects, **extra):
    """Run the admin action `action` of `changelist` on `objects`, as the action form does."""
    return client.post(
        changelist,
        {"action": action, "_selected_action": [obj.pk for obj in objects], **extra},
        follow=True,
    )


PAYOUT_CHANGELIST = "/admin/payouts/payout/"


def post_payout_action(client, action, payouts, **extra):
    """Run the payout admin's action `action` on `payouts`."""
    return post_admin_action(client, PAYOUT_CHANGELIST, action, payouts, **extra)


def admin_messages(response):
    """The messages the admin showed: [(level, text)]."""
    from django.contrib.messages import get_messages

    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def make_staff(make_user):
    """A staff user (not a superuser) holding exactly the permissions named
    ("payouts.change_payout", ...)."""
    from django.contrib.auth.models import Permission

    def make(*permissions, **fields):
        user = make_user(is_staff=True, **fields)
        for name in permissions:
            app_label, codename = name.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user

    return make


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness would make every make_user() take ~0.3 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _static_files_without_collectstatic(settings):
    # The manifest storage needs `collectstatic` first; pages in tests use plain names.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def make_user(django_user_model):
    def make(**fields):
        n = next(_sequence)
        fields.setdefault("email", f"user{n}@example.com")
        fields.setdefault("name", f"User {n}")
        fields.setdefault("timezone", "Europe/Paris")
        return django_user_model.objects.create_user(password="pw-for-tests", **fields)

    return make


@pytest.fixture
def make_creator(make_user):
    def make(user=None, **fields):
        n = next(_sequence)
        fields.setdefault("stripe_account_id", f"acct_test{n:06d}")
        fields.setdefault("is_stripe_onboarded", True)
        return Creator.objects.create(user=user or make_user(name=f"Creator {n}"), **fields)

    return make


@pytest.fixture
def make_booking(make_user, make_creator):
    def make(**fields):
        fields.setdefault("client", fields.get("client") or make_user())
        fields.setdefault("creator", fields.get("creator") or make_creator())
        fields.setdefault("status", Booking.Status.CONFIRMED)
        fields.setdefault("starts_at", timezone.now() + timedelta(days=1))
        fields.setdefault("total_price", Decimal("50.00"))
        return Booking.objects.create(**fields)

    return make


@pytest.fixture
def make_payout(make_creator):
    def make(**fields):
        fields.setdefault("creator", fields.get("creator") or make_creator())
        fields.setdefault("amount", Decimal("100.00"))
        fields.setdefault("currency", fields["creator"].currency)
        fields.setdefault("status", Payout.Status.APPROVED)
        if fields["status"] == Payout.Status.APPROVED:
            fields.setdefault("approved_at", timezone.now())
        return Payout.objects.create(**fields)

    return make


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 that records every message it accepts
    (tests/smtp_sink.py)."""
    with running_smtp_sink() as sink:
        yield sink


@pytest.fixture
def smtp_settings(settings, smtp_server):
    """Point Django's email at the test SMTP server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    return smtp_server


DAILY_TEST_API_KEY = "daily-test-key-5f3a9c1e"
DAILY_TEST_API_URL = "https://api.daily.test/v1"


@pytest.fixture
def daily_settings(settings):
    """Daily settings for tests: a fake key and URL, fast backoff, pacing too fast to wait.

    Intercept the HTTP with `responses` (DAILY_TEST_API_URL + "/rooms/<name>").
    """
    settings.DAILY_API_KEY = DAILY_TEST_API_KEY
    settings.DAILY_API_URL = DAILY_TEST_API_URL
    settings.DAILY_TIMEOUT_SECONDS = 2.0
    settings.DAILY_MAX_RETRIES = 3
    settings.DAILY_BACKOFF_FACTOR = 0.001
    # A rate must be above 0; a million a second leaves a microsecond between requests.
    settings.DAILY_DELETE_RATE_PER_SECOND = 1_000_000
    settings.DAILY_BATCH_RATE_PER_SECOND = 1_000_000
    return settings


@pytest.fixture
def mocked_daily(daily_settings):
    """Daily's API behind `responses` (DAILY_TEST_API_URL + "/rooms/<name>")."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def daily_fake(daily_settings):
    """A fake Daily (tests/daily_fake.py) behind `responses`: add rooms, make some fail."""
    from tests.daily_fake import FakeDaily, mocked_daily_fake

    with mocked_daily_fake(DAILY_TEST_API_URL, FakeDaily(DAILY_TEST_API_KEY)) as fake:
        yield fake


@pytest.fixture
def stripe_fake(settings):
    """A fake Stripe (tests/stripe_fake.py) behind `responses`, with the client pointed at it."""
    from tests.stripe_fake import mocked_stripe

    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    settings.STRIPE_MAX_NETWORK_RETRIES = 2
    settings.STRIPE_MAX_REQUESTS_PER_SECOND = 0  # unpaced: the fake has no rate limit
    with mocked_stripe(settings) as fake:
        yield fake


def admin_answer(client, url):
    """The final status code of a GET (redirects followed), or the exception it raised.

    Each request runs in a savepoint so that a database error stays its own.
    """
    try:
        with transaction.atomic():
            return client.get(url, follow=True).status_code
    except Exception as exc:  # Reported by the assertion that reads the answer.
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture
def subprocess_env(settings):
    """Environment for a `manage.py` or Python child process sharing the test database."""
    env = {**os.environ, "DATABASE_URL": database_url()}
    env["CRON_LOCK_DIR"] = str(settings.CRON_LOCK_DIR)
    env["PYTHONPATH"] = str(PROJECT_DIR)
    env["DJANGO_SETTINGS_MODULE"] = "callastar.settings"
    return env
