"""`manage.py check --deploy` warns about settings that run but quietly fail people: email
that is never delivered, links to localhost, a weak CRON_SECRET, nobody to alert, SQLite."""

import pytest
from django.core.checks import run_checks

from tests.processes import run_manage, start_manage

STRONG_SECRET = "Zq3v9T_xR2mK8pLw4nB7cY1dF6gH0jS5"
OURS = ("callastar.W001", "callastar.W002", "callastar.W003", "callastar.W004")


@pytest.fixture
def deployed(settings):
    """Settings of a good production deployment (the database aside: see below)."""
    settings.DEBUG = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.APP_URL = "https://callastar.com"
    settings.CRON_SECRET = STRONG_SECRET
    settings.ADMINS = [("Ops", "ops@callastar.com")]
    return settings


def deploy_warnings():
    # The database warning depends on the database this run uses: tested in child processes.
    return sorted(
        check.id for check in run_checks(include_deployment_checks=True) if check.id in OURS
    )


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend", []),
        ("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend", ["callastar.W001"]),
        ("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend", ["callastar.W001"]),
        ("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend", ["callastar.W001"]),
        ("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend", ["callastar.W001"]),
        ("APP_URL", "https://app.callastar.com", []),
        ("APP_URL", "http://localhost:3000", ["callastar.W002"]),
        ("APP_URL", "http://127.0.0.1:8000", ["callastar.W002"]),
        ("APP_URL", "http://[::1]:8000", ["callastar.W002"]),
        ("APP_URL", "https://web.localhost", ["callastar.W002"]),
        ("CRON_SECRET", "x" * 32, []),
        ("CRON_SECRET", "", ["callastar.W003"]),
        ("CRON_SECRET", "x" * 31, ["callastar.W003"]),
        ("CRON_SECRET", f"{STRONG_SECRET} x", ["callastar.W003"]),
        ("CRON_SECRET", f"{STRONG_SECRET}é", ["callastar.W003"]),
        ("ADMINS", [], ["callastar.W004"]),
    ],
)
def test_it_warns_when_a_setting_would_quietly_fail(deployed, setting, value, expected):
    setattr(deployed, setting, value)

    assert deploy_warnings() == expected


def test_it_leaves_email_and_urls_alone_while_debugging(deployed):
    deployed.DEBUG = True
    deployed.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    # It should not ask a laptop for an SMTP server.
    assert deploy_warnings() == []


def test_it_says_what_is_wrong_and_never_shows_the_secret(deployed):
    deployed.CRON_SECRET = "hunter2 é"

    (warning,) = [check for check in run_checks(include_deployment_checks=True) if check.id in OURS]

    assert warning.msg == (
        "CRON_SECRET is weak: it is shorter than 32 characters, it contains whitespace, "
        "it contains non-ASCII characters."
    )
    assert "hunter2" not in f"{warning.msg} {warning.hint}"


def test_it_warns_about_sqlite_only_in_production(subprocess_env, tmp_path):
    base = {
        **subprocess_env,
        "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
        "ADMINS": "Ops <ops@callastar.com>",
        "APP_URL": "https://callastar.com",
        "CRON_SECRET": STRONG_SECRET,
    }
    sqlite = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    cases = [
        ({"DEBUG": "false", "DATABASE_URL": sqlite}, True),
        ({"DEBUG": "true", "DATABASE_URL": sqlite}, False),
        ({"DEBUG": "false", "DATABASE_URL": "postgres://jobs@db.example.com:5432/jobs"}, False),
    ]
    children = [start_manage(["check", "--deploy"], {**base, **env}) for env, _ in cases]
    outputs = [child.communicate(timeout=120) for child in children]

    for (env, warned), (_, stderr) in zip(cases, outputs, strict=True):
        # It should warn that SQLite is one machine's database, only with DEBUG off.
        assert ("callastar.W005" in stderr) is warned, (env, stderr)
        assert "callastar.W00" not in stderr.replace("callastar.W005", ""), (env, stderr)


def test_it_lists_every_warning_for_the_development_defaults(subprocess_env):
    env = {**subprocess_env, "DEBUG": "false", "DATABASE_URL": "sqlite:///db.sqlite3"}
    for name in ("EMAIL_URL", "ADMINS", "APP_URL", "CRON_SECRET"):
        env.pop(name, None)

    checked = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env)

    # It should refuse the deployment, naming each of our five warnings.
    assert checked.returncode == 1
    for number in range(1, 6):
        assert f"callastar.W00{number}" in checked.stderr
