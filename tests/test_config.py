"""Configuration is checked up front: every bad value fails with one line naming the
variable and the expected form, before any work, and without a traceback."""

import runpy
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from callastar.config import Environment
from cronlogs.models import Log
from tests.processes import PROJECT_DIR, run_manage, start_manage

# Bad values and (part of) the line that names each: (variable, value, expected).
BAD_VALUES = [
    (
        "LOG_RETENTION_INFO_DAYS",
        "abc",
        "LOG_RETENTION_INFO_DAYS='abc': expected a whole number of days between 1 and 36500",
    ),
    ("LOG_RETENTION_WARNING_DAYS", "0", "between 1 and 36500"),
    ("LOG_RETENTION_ERROR_DAYS", "99999999999", "between 1 and 36500"),
    ("LOG_RETENTION_BATCH_SIZE", "0", "a whole number of rows between 1 and 1000000"),
    ("LOG_RETENTION_BATCH_SIZE", "1.5", "a whole number of rows"),
    ("REMINDER_LEAD_MINUTES", "-30", "a whole number of minutes between 1 and 1440"),
    ("REMINDER_CADENCE_MINUTES", "0", "a whole number of minutes between 1 and 1440"),
    (
        "DAILY_DELETE_RATE_PER_SECOND",
        "0",
        "DAILY_DELETE_RATE_PER_SECOND='0': expected a number of deletions per second "
        "greater than 0 and at most 100",
    ),
    ("DAILY_DELETE_RATE_PER_SECOND", "-1.5", "greater than 0"),
    ("DAILY_TIMEOUT_SECONDS", "0", "a number of seconds greater than 0 and at most 600"),
    ("STRIPE_TIMEOUT_SECONDS", "inf", "a number of seconds greater than 0 and at most 600"),
    ("DAILY_MAX_RETRIES", "three", "a whole number of retries between 0 and 20"),
    ("STRIPE_MAX_NETWORK_RETRIES", "-1", "a whole number of retries between 0 and 20"),
    ("DAILY_BACKOFF_FACTOR", "nan", "a number of seconds at least 0 and at most 60"),
    (
        "EMAIL_TIMEOUT",
        "abc",
        "EMAIL_TIMEOUT='abc': expected a number of seconds greater than 0 and at most 600",
    ),
    ("EMAIL_TIMEOUT", "0", "greater than 0"),
    ("EMAIL_URL", "smtq://mail.example.com", "expected an email URL starting with one of smtp://"),
    ("EMAIL_URL", "smtp://mail.example.com:port", "expected an email URL"),
    (
        "DATABASE_URL",
        "garbage",
        "DATABASE_URL='garbage': expected postgres://user:password@host:5432/name "
        "or sqlite:///path/to/file.sqlite3",
    ),
    ("DATABASE_URL", "mysql://db.example.com/callastar", "expected postgres://"),
    ("DATABASE_URL", "postgres://db.example.com:5432/", "expected postgres://"),
    ("DEBUG", "maybe", "DEBUG='maybe': expected true or false"),
    ("APP_URL", "callastar.com", "expected an http:// or https:// URL"),
    ("ADMINS", "ops", "expected a comma-separated list of Name <email> or email"),
    ("LOG_LEVEL", "LOUD", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("EMAIL_CONNECTIONS", "0", "a whole number of connections between 1 and 32"),
    ("DEFAULT_USER_TIMEZONE", "Mars/Olympus", "an IANA time zone name"),
    ("DEFAULT_USER_TIMEZONE", "../../etc/passwd", "an IANA time zone name"),
    ("STRIPE_CONCURRENCY", "0", "a whole number of creators in flight between 1 and 16"),
    ("STRIPE_MAX_REQUESTS_PER_SECOND", "0", "requests per second greater than 0"),
    ("PAYOUT_MINIMUMS", "eur:10", "currency=amount pairs, e.g. eur=10,usd=10,jpy=1000"),
    ("PAYOUT_MINIMUMS", "euro=10", "currency=amount pairs"),
    ("PAYOUT_MINIMUMS", "eur=-1", "currency=amount pairs"),
    ("DAILY_BATCH_SIZE", "1001", "a whole number of rooms between 1 and 1000"),
    ("DAILY_BATCH_RATE_PER_SECOND", "0", "greater than 0"),
    ("DAILY_ROOM_GRACE_MINUTES", "-5", "a whole number of minutes between 0 and 10080"),
    ("CRON_OVERDUE_GRACE_MINUTES", "abc", "a whole number of minutes between 1 and 1440"),
    ("CRON_PAUSE_ALERT_HOURS", "0", "a number of hours greater than 0"),
    (
        "CRON_SCHEDULE_CLEANUP_LOGS",
        "every day",
        "CRON_SCHEDULE_CLEANUP_LOGS='every day': expected a five-field cron expression",
    ),
    (
        "CRON_MAX_RUNTIME_SEND_BOOKING_REMINDERS",
        "-1",
        "expected a number of minutes greater than 0",
    ),
]


# One of each kind the issue lists, for the real manage.py in a child process.
IN_A_CHILD_PROCESS = [
    ("LOG_RETENTION_INFO_DAYS", "abc"),  # an unparseable number
    ("LOG_RETENTION_ERROR_DAYS", "99999999999"),  # retention too large for a date
    ("LOG_RETENTION_WARNING_DAYS", "0"),  # retention < 1
    ("LOG_RETENTION_BATCH_SIZE", "0"),  # a batch size < 1
    ("DAILY_DELETE_RATE_PER_SECOND", "0"),  # a rate <= 0
    ("REMINDER_LEAD_MINUTES", "-30"),  # a lead < 1
    ("REMINDER_CADENCE_MINUTES", "0"),  # a cadence < 1
    ("DAILY_TIMEOUT_SECONDS", "0"),  # a timeout <= 0
    ("EMAIL_TIMEOUT", "abc"),
    ("EMAIL_URL", "smtq://mail.example.com"),  # an unknown scheme
    ("DATABASE_URL", "garbage"),  # KeyError: 'ENGINE' before
]


def settings_problems(monkeypatch, **variables):
    """The lines callastar/settings.py raises with `variables` in the environment."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        runpy.run_path(str(PROJECT_DIR / "callastar" / "settings.py"))
    except ImproperlyConfigured as problems:
        return str(problems).splitlines()
    return []


@pytest.mark.parametrize(("name", "value", "expected"), BAD_VALUES)
def test_it_names_the_variable_and_the_form_it_expects(monkeypatch, name, value, expected):
    lines = settings_problems(monkeypatch, **{name: value})

    # It should say, in one line, which variable holds what and what it should hold.
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{name}={value!r}: expected "), lines
    assert expected in lines[0]


def test_it_reads_payout_minimums_in_any_case():
    config = Environment({"PAYOUT_MINIMUMS": " EUR=25, jpy=5000 ,Usd=12.50"})

    minimums = config.minimums("PAYOUT_MINIMUMS", default="eur=10")

    assert minimums == {"EUR": Decimal("25"), "JPY": Decimal("5000"), "USD": Decimal("12.50")}
    assert config.problems == []


def read(**variables):
    """Read the settings a test needs from `variables`, as settings.py does."""
    config = Environment(variables)
    values = {
        "days": config.whole_number(
            "LOG_RETENTION_INFO_DAYS", default=30, unit="days", minimum=1, maximum=36500
        ),
        "rate": config.number(
            "DAILY_DELETE_RATE_PER_SECOND", default=1.5, unit="per second", above=0, maximum=100
        ),
        "debug": config.boolean("DEBUG", default=False),
        "database": config.database_url("DATABASE_URL", default="sqlite:///db.sqlite3"),
        "email": config.email_url("EMAIL_URL", default="consolemail://"),
        "admins": config.addresses("ADMINS"),
        "app_url": config.web_url("APP_URL", default="http://localhost:3000", example="x"),
    }
    return config, values


def test_it_reads_good_values_and_defaults():
    config, values = read(
        LOG_RETENTION_INFO_DAYS=" 45 ",
        DAILY_DELETE_RATE_PER_SECOND="0.5",
        DEBUG="True",
        DATABASE_URL="postgres://jobs:pw@db.example.com:5433/callastar",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.com:587",
        ADMINS="Jane Ops <jane@example.com>, oncall@example.com",
        APP_URL="https://callastar.com/",
    )

    # It should parse each value by its rule, and note no problem.
    assert config.problems == []
    assert values["days"] == 45 and values["rate"] == 0.5 and values["debug"] is True
    assert values["database"]["ENGINE"] == "django.db.backends.postgresql"
    assert values["database"]["PORT"] == 5433 and values["database"]["NAME"] == "callastar"
    assert values["email"]["EMAIL_HOST"] == "smtp.example.com"
    assert values["email"]["EMAIL_USE_TLS"] is True
    assert values["admins"] == [
        ("Jane Ops", "jane@example.com"),
        ("oncall@example.com", "oncall@example.com"),
    ]
    assert values["app_url"] == "https://callastar.com"

    # It should take an unset or empty variable for its default.
    config, values = read(LOG_RETENTION_INFO_DAYS="", DEBUG="  ")
    assert config.problems == []
    assert values["days"] == 30 and values["rate"] == 1.5 and values["debug"] is False
    assert values["database"]["ENGINE"] == "django.db.backends.sqlite3"
    assert values["admins"] == [] and values["app_url"] == "http://localhost:3000"


def test_it_notes_every_bad_value_then_raises_them_all_at_once():
    config, values = read(
        LOG_RETENTION_INFO_DAYS="abc",
        DAILY_DELETE_RATE_PER_SECOND="0",
        DATABASE_URL="garbage",
        EMAIL_URL="smtq://x",
    )

    # It should go on with the defaults, so that every variable is read ...
    assert values["days"] == 30 and values["rate"] == 1.5
    assert values["database"]["ENGINE"] == "django.db.backends.sqlite3"
    # ... and raise one line per bad value at the end.
    with pytest.raises(ImproperlyConfigured) as raised:
        config.raise_problems()
    lines = str(raised.value).splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "LOG_RETENTION_INFO_DAYS",
        "DAILY_DELETE_RATE_PER_SECOND",
        "DATABASE_URL",
        "EMAIL_URL",
    ]


def test_it_never_prints_a_password_from_a_url():
    config, _ = read(
        DATABASE_URL="postgres://jobs:hunter2@db.example.com:notaport/callastar",
        EMAIL_URL="smtq://mailer:s3cret@smtp.example.com",
    )

    # It should name the variable and show the URL, with the password masked.
    assert config.problems[0].startswith("DATABASE_URL='postgres://jobs:***@db.example.com")
    assert config.problems[1].startswith("EMAIL_URL='smtq://mailer:***@smtp.example.com'")
    assert "hunter2" not in "".join(config.problems) and "s3cret" not in "".join(config.problems)


def test_it_refuses_each_bad_value_in_one_line_before_any_work(subprocess_env):
    # Every child at once: each takes a Python start-up, and they share nothing.
    children = [
        start_manage(["check"], {**subprocess_env, name: value})
        for name, value in IN_A_CHILD_PROCESS
    ]
    outputs = [child.communicate(timeout=120) for child in children]

    for (name, value), child, (_, stderr) in zip(
        IN_A_CHILD_PROCESS, children, outputs, strict=True
    ):
        # It should exit 1 with one line naming the variable, and no traceback.
        assert child.returncode == 1, (name, value, stderr)
        assert stderr.splitlines() == [stderr.strip()], (name, value, stderr)
        assert stderr.startswith(f"{name}={value!r}: expected "), (name, value, stderr)


def test_it_lists_every_bad_value_in_one_go(subprocess_env):
    env = {
        **subprocess_env,
        "LOG_RETENTION_INFO_DAYS": "abc",
        "EMAIL_TIMEOUT": "abc",
        "REMINDER_LEAD_MINUTES": "-30",
    }

    finished = run_manage(["check"], env)

    # It should name all three, one line each, and nothing else.
    assert finished.returncode == 1
    assert [line.split("=", 1)[0] for line in finished.stderr.splitlines()] == [
        "EMAIL_TIMEOUT",
        "LOG_RETENTION_INFO_DAYS",
        "REMINDER_LEAD_MINUTES",
    ]


@pytest.mark.django_db(transaction=True)
def test_it_stops_a_job_before_it_does_anything(subprocess_env):
    finished = run_manage(["cleanup_logs"], {**subprocess_env, "LOG_RETENTION_BATCH_SIZE": "0"})

    # It should refuse to start: no run row, no traceback.
    assert finished.returncode == 1
    assert finished.stderr.startswith("LOG_RETENTION_BATCH_SIZE='0': expected a whole number")
    assert "Traceback" not in finished.stderr
    assert not Log.objects.exists()


def test_it_accepts_a_good_configuration(subprocess_env):
    env = {
        **subprocess_env,
        "DEBUG": "false",
        "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
        "EMAIL_TIMEOUT": "7.5",
        "ADMINS": "Ops <ops@example.com>",
        "APP_URL": "https://callastar.com",
        "LOG_RETENTION_INFO_DAYS": "7",
        "LOG_RETENTION_WARNING_DAYS": "36500",
        "LOG_RETENTION_BATCH_SIZE": "1",
        "REMINDER_LEAD_MINUTES": "1",
        "REMINDER_CADENCE_MINUTES": "1",
        "DAILY_DELETE_RATE_PER_SECOND": "0.1",
        "DAILY_MAX_RETRIES": "0",
        "DAILY_BACKOFF_FACTOR": "0",
        "STRIPE_TIMEOUT_SECONDS": "0.5",
        "LOG_LEVEL": "info",
    }

    finished = run_manage(["check"], env)

    assert finished.returncode == 0, finished.stderr
    assert "System check identified no issues" in finished.stdout


def test_an_empty_static_setting_means_its_default(monkeypatch):
    # .env.example lists them empty; an empty STATIC_ROOT must not mean "the project itself".
    monkeypatch.setenv("STATIC_ROOT", "")
    monkeypatch.setenv("STATICFILES_STORAGE", "")

    loaded = runpy.run_path(str(PROJECT_DIR / "callastar" / "settings.py"))

    assert loaded["STATIC_ROOT"] == PROJECT_DIR / "staticfiles"
    assert loaded["STORAGES"]["staticfiles"]["BACKEND"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )
