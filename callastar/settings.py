"""Settings for the Call a Star jobs project.

Every value an operator may change comes from the environment (or a `.env` file beside
`manage.py`); `.env.example` lists them all. Numbers, booleans and URLs are read by
`callastar.config`, each with its rule: every bad value is reported at the end, one line
each, and `manage.py` prints those lines and exits 1 before any work.
"""

from pathlib import Path

import environ

from callastar.config import LOG_LEVELS, Environment
from cronlogs.jobs import JOBS, cronjobs

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
config = Environment()

# --- Core -------------------------------------------------------------------------------

DEBUG = config.boolean("DEBUG", default=False)
# The fallback key is only good for a laptop: `manage.py check --deploy` flags it.
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-local-development-key-do-not-use-in-production"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# ADMINS="Jane Ops <jane@example.com>,oncall@example.com": who hears about failing jobs.
ADMINS = config.addresses("ADMINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_crontab",
    "cronlogs",
    "bookings",
    "payouts",
    "callastar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "callastar.middleware.RefuseNulBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "bookings.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "callastar.urls"
WSGI_APPLICATION = "callastar.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------

DATABASES = {
    "default": config.database_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so that tests can start a second process on the same data.
    _sqlite_name = Path(DATABASES["default"]["NAME"]).name
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(BASE_DIR / f"test_{_sqlite_name}")
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "bookings.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Time and language ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(config.raw("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": config.raw("STATICFILES_STORAGE")
        or "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Email ------------------------------------------------------------------------------

vars().update(config.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Call a Star <no-reply@callastar.com>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_TIMEOUT = config.number("EMAIL_TIMEOUT", default=10, unit="seconds", above=0, maximum=600)
EMAIL_SUBJECT_PREFIX = "[Call a Star] "

# --- Security (production, DEBUG off) ---------------------------------------------------

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = config.boolean("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = config.boolean("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = config.boolean("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = config.whole_number(
        "SECURE_HSTS_SECONDS", default=31536000, unit="seconds", minimum=0, maximum=10 * 31536000
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = config.boolean("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading binds the whole domain, subdomains included, to HTTPS in every browser:
        # the domain owner opts in (SECURE_HSTS_PRELOAD=true), not this app by default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- The platform -----------------------------------------------------------------------

APP_URL = config.web_url(
    "APP_URL", default="http://localhost:3000", example="https://callastar.com"
)
CRON_SECRET = env.str("CRON_SECRET", default="")

DAILY_API_KEY = env.str("DAILY_API_KEY", default="")
DAILY_API_URL = config.web_url(
    "DAILY_API_URL", default="https://api.daily.co/v1", example="https://api.daily.co/v1"
)
DAILY_TIMEOUT_SECONDS = config.number(
    "DAILY_TIMEOUT_SECONDS", default=10.0, unit="seconds", above=0, maximum=600
)
DAILY_MAX_RETRIES = config.whole_number(
    "DAILY_MAX_RETRIES", default=3, unit="retries", minimum=0, maximum=20
)
# Daily allows about 2 DELETE /rooms/:name per second (50 per 30 s); stay below it.
DAILY_DELETE_RATE_PER_SECOND = config.number(
    "DAILY_DELETE_RATE_PER_SECOND", default=1.5, unit="deletions per second", above=0, maximum=100
)
# DELETE /batch/rooms and GET /rooms/:name fall under Daily's general limit (20 per second,
# 100 per 5 s); 15/s leaves the platform's own calls a quarter of it.
DAILY_BATCH_RATE_PER_SECOND = config.number(
    "DAILY_BATCH_RATE_PER_SECOND", default=15, unit="requests per second", above=0, maximum=100
)
# Rooms named by one DELETE /batch/rooms (Daily takes at most 1,000).
DAILY_BATCH_SIZE = config.whole_number(
    "DAILY_BATCH_SIZE", default=1000, unit="rooms", minimum=1, maximum=1000
)
# A COMPLETED call keeps its room this long past its scheduled end, for calls that run over.
DAILY_ROOM_GRACE_MINUTES = config.whole_number(
    "DAILY_ROOM_GRACE_MINUTES", default=30, unit="minutes", minimum=0, maximum=10080
)
# Exponential backoff between retries of a failed Daily call: factor * 2**n s, plus jitter.
DAILY_BACKOFF_FACTOR = config.number(
    "DAILY_BACKOFF_FACTOR", default=0.5, unit="seconds", minimum=0, maximum=60
)

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_API_BASE = config.web_url(
    "STRIPE_API_BASE", default="https://api.stripe.com", example="https://api.stripe.com"
)
STRIPE_TIMEOUT_SECONDS = config.number(
    "STRIPE_TIMEOUT_SECONDS", default=30.0, unit="seconds", above=0, maximum=600
)
STRIPE_MAX_NETWORK_RETRIES = config.whole_number(
    "STRIPE_MAX_NETWORK_RETRIES", default=2, unit="retries", minimum=0, maximum=20
)
# Stripe allows 100 requests a second in live mode and 25 in test mode (and 25 per endpoint):
# stay well under both, whatever the mode; raise it for a busy live account.
STRIPE_MAX_REQUESTS_PER_SECOND = config.number(
    "STRIPE_MAX_REQUESTS_PER_SECOND", default=20, unit="requests per second", above=0, maximum=100
)
# Automatic payouts hold each currency's balance to a minimum: the creator's payout_minimum
# for their own currency, these (major units) for the others.
PAYOUT_MINIMUMS = config.minimums("PAYOUT_MINIMUMS", default="eur=10,usd=10,gbp=10,jpy=1000")
# Payouts (one creator each) in flight at once in the payout jobs.
STRIPE_CONCURRENCY = config.whole_number(
    "STRIPE_CONCURRENCY", default=4, unit="creators in flight", minimum=1, maximum=16
)
# The webhook endpoint's signing secret (whsec_...); POST /api/stripe/webhook is 503 without it.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# reconcile-payouts compares the Stripe payouts of the last N days with ours.
PAYOUT_RECONCILE_DAYS = config.whole_number(
    "PAYOUT_RECONCILE_DAYS", default=30, unit="days", minimum=1, maximum=3650
)

# Log retention in days per level; CRITICAL rows are never deleted. A hundred years at
# most: far more and the cut-off date falls before year 1.
LOG_RETENTION_DAYS = {
    level: config.whole_number(
        f"LOG_RETENTION_{level}_DAYS", default=default, unit="days", minimum=1, maximum=36500
    )
    for level, default in {"INFO": 30, "WARNING": 60, "ERROR": 90}.items()
}
LOG_RETENTION_BATCH_SIZE = config.whole_number(
    "LOG_RETENTION_BATCH_SIZE", default=10_000, unit="rows", minimum=1, maximum=1_000_000
)

# SMTP connections a reminder run sends over at once, each with its share of the messages.
EMAIL_CONNECTIONS = config.whole_number(
    "EMAIL_CONNECTIONS", default=4, unit="connections", minimum=1, maximum=32
)
# Reminders of a person whose time zone is empty or unknown show the call in this one.
DEFAULT_USER_TIMEZONE = config.time_zone("DEFAULT_USER_TIMEZONE", default="UTC")

REMINDER_LEAD_MINUTES = config.whole_number(
    "REMINDER_LEAD_MINUTES", default=15, unit="minutes", minimum=1, maximum=1440
)
REMINDER_CADENCE_MINUTES = config.whole_number(
    "REMINDER_CADENCE_MINUTES", default=5, unit="minutes", minimum=1, maximum=1440
)

# Per-job overrides of the job registry's defaults (cronlogs/jobs.py), one variable each:
# CRON_SCHEDULE_<JOB>="*/2 * * * *", CRON_MAX_RUNTIME_<JOB>=0.5 (minutes), CRON_PING_URL_<JOB>.
# Only the variables that are set become settings. A bad one is told here with the rest;
# `cronlogs.checks` tells it again for settings changed at run time.
for _job in JOBS.values():
    for _kind in ("SCHEDULE", "MAX_RUNTIME", "PING_URL"):
        _name = _job.setting_name(_kind)
        if config.raw(_name) is not None:
            globals()[_name] = config.raw(_name).strip()
    config.problems += _job.configuration_problems(globals())
# Where the SQLite fallback of the job lock keeps its lock files.
CRON_LOCK_DIR = env.path("CRON_LOCK_DIR", default=BASE_DIR / "var" / "locks")
# A job is overdue once a scheduled run is this many minutes late (cron_status, health).
CRON_OVERDUE_GRACE_MINUTES = config.whole_number(
    "CRON_OVERDUE_GRACE_MINUTES", default=10, unit="minutes", minimum=1, maximum=1440
)
# A paused job turns unhealthy (health 503, one email) once paused this long: a forgotten
# pause is an outage.
CRON_PAUSE_ALERT_HOURS = config.number(
    "CRON_PAUSE_ALERT_HOURS", default=24, unit="hours", above=0, maximum=24 * 365
)

# Check-in pings (CRON_PING_URL_<JOB>, above): the most one ping may take, its one retry
# included; a ping never changes a run's outcome.
CRON_PING_TIMEOUT_SECONDS = config.number(
    "CRON_PING_TIMEOUT_SECONDS", default=5.0, unit="seconds", above=0, maximum=60
)

# django-crontab: one line per job, each through the shared runner with trigger "cron".
CRONJOBS = cronjobs(globals())
CRONTAB_COMMENT = "callastar-jobs"
CRONTAB_LOCK_JOBS = False  # The runner's own lock covers every host, not just this one.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": config.choice("LOG_LEVEL", "WARNING", LOG_LEVELS)},
    # A suspicious request (a disallowed host, a hostile admin query string) is answered
    # 400 and logged; Django would also mail ADMINS for each, so any caller could flood
    # them. The job alerts are what ADMINS hear about.
    "loggers": {"django.security": {"handlers": ["console"], "propagate": False}},
}

# --- Sentry (errors and cron monitors; off unless SENTRY_DSN is set) ---------------------

SENTRY_DSN = env.str("SENTRY_DSN", default="").strip()
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
# Performance tracing: 0 (off) unless a share of requests is asked for, e.g. 0.1.
SENTRY_TRACES_SAMPLE_RATE = config.number(
    "SENTRY_TRACES_SAMPLE_RATE",
    default=0.0,
    unit="requests traced per request (0: tracing off)",
    minimum=0,
    maximum=1,
)
if SENTRY_DSN:
    # Imported only now: without a DSN the SDK is never loaded.
    from cronlogs.sentry import dsn_problem, init_sentry

    if dsn_problem(SENTRY_DSN):
        config.problems.append(dsn_problem(SENTRY_DSN))
    else:
        init_sentry(
            dsn=SENTRY_DSN,
            environment=SENTRY_ENVIRONMENT,
            release=SENTRY_RELEASE,
            traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
        )

# Every bad value above, one line each, at once (manage.py prints them and exits 1).
config.raise_problems()
