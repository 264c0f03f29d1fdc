"""Settings for the Call a Star jobs project.

Every value an operator may change comes from the environment (or a `.env` file beside
`manage.py`) through django-environ; `.env.example` lists them all.
"""

from email.utils import parseaddr
from pathlib import Path

import environ

from cronlogs.jobs import JOBS, cronjobs

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# The fallback key is only good for a laptop: `manage.py check --deploy` flags it.
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-local-development-key-do-not-use-in-production"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# ADMINS="Jane Ops <jane@example.com>,oncall@example.com": who hears about failing jobs.
ADMINS = [
    (name or address, address)
    for name, address in map(parseaddr, env.list("ADMINS", default=[]))
    if address
]

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
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
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
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_STORAGE",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# --- Email ------------------------------------------------------------------------------

vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Call a Star <no-reply@callastar.com>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
EMAIL_SUBJECT_PREFIX = "[Call a Star] "

# --- Security (production, DEBUG off) ---------------------------------------------------

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading binds the whole domain, subdomains included, to HTTPS in every browser:
        # the domain owner opts in (SECURE_HSTS_PRELOAD=true), not this app by default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- The platform -----------------------------------------------------------------------

APP_URL = env.str("APP_URL", default="http://localhost:3000").rstrip("/")
CRON_SECRET = env.str("CRON_SECRET", default="")

DAILY_API_KEY = env.str("DAILY_API_KEY", default="")
DAILY_API_URL = env.str("DAILY_API_URL", default="https://api.daily.co/v1").rstrip("/")
DAILY_TIMEOUT_SECONDS = env.float("DAILY_TIMEOUT_SECONDS", default=10.0)
DAILY_MAX_RETRIES = env.int("DAILY_MAX_RETRIES", default=3)
# Daily allows about 2 DELETE /rooms/:name per second (50 per 30 s); stay below it.
DAILY_DELETE_RATE_PER_SECOND = env.float("DAILY_DELETE_RATE_PER_SECOND", default=1.5)
# DELETE /batch/rooms and GET /rooms/:name fall under Daily's general limit (20 per second,
# 100 per 5 s); 15/s leaves the platform's own calls a quarter of it.
DAILY_BATCH_RATE_PER_SECOND = env.float("DAILY_BATCH_RATE_PER_SECOND", default=15.0)
# Rooms named by one DELETE /batch/rooms (Daily takes at most 1,000).
DAILY_BATCH_SIZE = env.int("DAILY_BATCH_SIZE", default=1000)
# A COMPLETED call keeps its room this long past its scheduled end, for calls that run over.
DAILY_ROOM_GRACE_MINUTES = env.int("DAILY_ROOM_GRACE_MINUTES", default=30)
# Exponential backoff between retries of a failed Daily call: factor * 2**n s, plus jitter.
DAILY_BACKOFF_FACTOR = env.float("DAILY_BACKOFF_FACTOR", default=0.5)

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=30.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)

# Log retention in days per level; CRITICAL rows are never deleted.
LOG_RETENTION_DAYS = {
    "INFO": env.int("LOG_RETENTION_INFO_DAYS", default=30),
    "WARNING": env.int("LOG_RETENTION_WARNING_DAYS", default=60),
    "ERROR": env.int("LOG_RETENTION_ERROR_DAYS", default=90),
}
LOG_RETENTION_BATCH_SIZE = env.int("LOG_RETENTION_BATCH_SIZE", default=10_000)

REMINDER_LEAD_MINUTES = env.int("REMINDER_LEAD_MINUTES", default=15)
REMINDER_CADENCE_MINUTES = env.int("REMINDER_CADENCE_MINUTES", default=5)

# Per-job overrides of the job registry's defaults (cronlogs/jobs.py), one variable each:
# CRON_SCHEDULE_<JOB>="*/2 * * * *", CRON_MAX_RUNTIME_<JOB>=0.5 (minutes), CRON_PING_URL_<JOB>.
# Only the variables that are set become settings; `cronlogs.checks` validates them.
for _job in JOBS.values():
    for _kind in ("SCHEDULE", "MAX_RUNTIME", "PING_URL"):
        _name = _job.setting_name(_kind)
        if env.str(_name, default="").strip():
            globals()[_name] = env.str(_name).strip()
# Where the SQLite fallback of the job lock keeps its lock files.
CRON_LOCK_DIR = env.path("CRON_LOCK_DIR", default=BASE_DIR / "var" / "locks")
# A job is overdue once a scheduled run is this many minutes late (cron_status, health).
CRON_OVERDUE_GRACE_MINUTES = env.int("CRON_OVERDUE_GRACE_MINUTES", default=10)
# A paused job turns unhealthy (health 503, one email) once paused this long: a forgotten
# pause is an outage.
CRON_PAUSE_ALERT_HOURS = env.float("CRON_PAUSE_ALERT_HOURS", default=24)

# django-crontab: one line per job, each through the shared runner with trigger "cron".
CRONJOBS = cronjobs(globals())
CRONTAB_COMMENT = "callastar-jobs"
CRONTAB_LOCK_JOBS = False  # The runner's own lock covers every host, not just this one.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
