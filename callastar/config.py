"""The settings reader: every environment variable parsed by its rule, every bad value told.

`callastar/settings.py` reads each value through one `Environment`. A value that breaks
its rule is not a traceback: the reader notes one line naming the variable and the form
it expects (`LOG_RETENTION_INFO_DAYS='abc': expected a whole number of days between 1 and
36500`), goes on with the default so that the other variables are read too, and
`raise_problems()` at the end of the settings raises ImproperlyConfigured with all the
lines at once. `manage.py` prints them and exits 1, before any work.

An unset or empty variable means its default. Passwords in URLs are masked in the lines.
"""

import math
import os
import re
import warnings
import zoneinfo
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"true", "yes", "on", "1", "y", "ok"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", "n"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATABASE_SCHEMES = ("postgres", "postgresql", "pgsql", "psql", "sqlite")
DATABASE_FORM = "postgres://user:password@host:5432/name or sqlite:///path/to/file.sqlite3"
EMAIL_SCHEMES = tuple(environ.Env.EMAIL_SCHEMES)
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+(_[0-9]+)*")
URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def masked(value):
    """The value as it may be printed: a URL's password replaced by ***."""
    return URL_PASSWORD.sub(r"\1***@", value)


def scheme_of(url):
    """The URL's scheme, or "" for text that is no URL."""
    try:
        return urlsplit(url.strip()).scheme
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""


def web_host(url):
    """The URL's host; raises ValueError for a port that is not a number."""
    parts = urlsplit(url)
    parts.port  # noqa: B018 - reading it validates it
    return parts.hostname


def parse_minimums(text):
    """{"EUR": Decimal("10"), ...} from "eur=10,jpy=1000", or None if it does not parse."""
    amounts = {}
    for item in text.split(","):
        code, _, amount = (part.strip() for part in item.partition("="))
        try:
            number = Decimal(amount)
        except InvalidOperation:
            return None
        if not re.fullmatch(r"[A-Za-z]{3}", code) or not number.is_finite() or number < 0:
            return None
        amounts[code.upper()] = number
    return amounts


class Environment:
    """Reads settings from `environ` (os.environ by default), noting each bad value."""

    def __init__(self, variables=None):
        self.environ = os.environ if variables is None else variables
        self.problems = []

    def raw(self, name):
        """The variable's text, or None when it is unset or empty."""
        value = self.environ.get(name, "")
        return value if value.strip() else None

    def problem(self, name, value, expected):
        self.problems.append(f"{name}={masked(value)!r}: expected {expected}")

    def raise_problems(self):
        if self.problems:
            raise ImproperlyConfigured("\n".join(self.problems))

    # --- Rules ----------------------------------------------------------------------

    def boolean(self, name, default):
        value = self.raw(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        self.problem(name, value, "true or false")
        return default

    def whole_number(self, name, default, *, unit, minimum, maximum):
        value = self.raw(name)
        if value is None:
            return default
        if WHOLE_NUMBER.fullmatch(value.strip()) and minimum <= int(value) <= maximum:
            return int(value)
        self.problem(name, value, f"a whole number of {unit} between {minimum} and {maximum}")
        return default

    def number(self, name, default, *, unit, maximum, above=None, minimum=None):
        """A finite number at most `maximum`, and greater than `above` (or at least
        `minimum`); fractions allowed."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        high_enough = number > above if above is not None else number >= minimum
        if math.isfinite(number) and high_enough and number <= maximum:
            return number
        low = f"greater than {above:g}" if above is not None else f"at least {minimum:g}"
        self.problem(name, value, f"a number of {unit} {low} and at most {maximum:g}")
        return default

    def choice(self, name, default, choices):
        value = self.raw(name)
        if value is None:
            return default
        if value.strip().upper() in choices:
            return value.strip().upper()
        self.problem(name, value, f"one of {', '.join(choices)}")
        return default

    def minimums(self, name, default):
        """Amounts by currency, `eur=10,usd=10,jpy=1000` (major units, any case), as
        {"EUR": Decimal("10"), ...}."""
        value = self.raw(name)
        amounts = parse_minimums(value) if value is not None else None
        if amounts is None:
            if value is not None:
                self.problem(name, value, "currency=amount pairs, e.g. eur=10,usd=10,jpy=1000")
            amounts = parse_minimums(default)
        return amounts

    def time_zone(self, name, default):
        """An IANA time zone name: Europe/Paris, UTC."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            zoneinfo.ZoneInfo(value.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.problem(name, value, "an IANA time zone name, e.g. Europe/Paris or UTC")
            return default
        return value.strip()

    def web_url(self, name, default, *, example):
        """An http:// or https:// URL with a host, without a trailing slash."""
        value = self.raw(name)
        if value is None:
            return default.rstrip("/")
        if scheme_of(value) in ("http", "https") and self._parsed(web_host, value.strip()):
            return value.strip().rstrip("/")
        self.problem(name, value, f"an http:// or https:// URL, e.g. {example}")
        return default.rstrip("/")

    def addresses(self, name):
        """`Name <email>, email, …` as Django's ADMINS: [(name, email), …]."""
        value = self.raw(name)
        if value is None:
            return []
        admins = []
        for entry in filter(str.strip, value.split(",")):
            person, address = parseaddr(entry)
            if "@" not in address:
                self.problem(name, value, "a comma-separated list of Name <email> or email")
                return []
            admins.append((person or address, address))
        return admins

    def database_url(self, name, default):
        """Django's DATABASES["default"] from a PostgreSQL or SQLite URL."""
        value = self.raw(name) or default
        scheme, config = scheme_of(value), None
        if scheme in DATABASE_SCHEMES:
            config = self._parsed(environ.Env.db_url_config, value.strip())
        if config is None or (scheme != "sqlite" and not config.get("NAME")):
            self.problem(name, value, DATABASE_FORM)
            return environ.Env.db_url_config(default)
        return config

    def email_url(self, name, default):
        """Django's EMAIL_* settings from an email URL (smtp+tls://user:pw@host:587, …)."""
        value = self.raw(name) or default
        config = None
        if scheme_of(value) in EMAIL_SCHEMES:
            config = self._parsed(environ.Env.email_url_config, value.strip())
        if config is None:
            schemes = ", ".join(f"{scheme}://" for scheme in EMAIL_SCHEMES)
            self.problem(name, value, f"an email URL starting with one of {schemes}")
            return environ.Env.email_url_config(default)
        return config

    @staticmethod
    def _parsed(parse, value):
        # django-environ warns with the whole parsed URL, password included: keep it quiet.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return parse(value)
            except (ValueError, ImproperlyConfigured):
                return None
