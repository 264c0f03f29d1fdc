"""Cron expressions: what a schedule means in words, when it fires next, and whether a job
has missed it.

Schedules are read in UTC (Django's TIME_ZONE here), the time zone the servers' cron should
use too; `docs/CRON_SCHEDULE.md` says how to make sure of it.
"""

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cron_descriptor import Options, get_description
from croniter import croniter
from django.conf import settings
from django.utils import timezone

# A run writes its row when it ends, so a job is only late once its scheduled time is this
# far behind us; long enough for the slowest job's normal run, short enough to be useful.
DEFAULT_GRACE = timedelta(minutes=10)


def validate_schedule(expression):
    """Raise ValueError if `expression` is not a five-field cron expression."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(
            "expected a five-field cron expression (minute hour day-of-month month "
            "day-of-week), e.g. '0 3 * * *'"
        )


def describe_schedule(expression):
    """The schedule in English, e.g. "Every 5 minutes" or "At 03:00"."""
    options = Options()
    options.use_24hour_time_format = True
    text = get_description(expression, options)
    return f"{text} UTC" if _names_a_time(expression) else text


def _names_a_time(expression):
    minute, hour, *_ = expression.split()
    return hour != "*" and minute.isdigit()


def next_run(expression, *, after):
    """The first time strictly after `after` at which the schedule fires."""
    return croniter(expression, timezone.localtime(after)).get_next(type(after))


def last_due(expression, *, now):
    """The latest scheduled time at or before `now`."""
    # croniter's get_prev is strictly before its start, so start a second later.
    return croniter(expression, timezone.localtime(now) + timedelta(seconds=1)).get_prev(type(now))


# Long enough to see a weekly pattern (weekdays only, a weekly run) whole.
PERIOD_HORIZON = timedelta(days=8)
PERIOD_REFERENCE = datetime(2024, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=64)
def longest_gap(expression):
    """The longest time between two consecutive runs of the schedule: its period for a
    regular one ("*/5 * * * *": 5 min), the weekend for "0 9 * * 1-5" (3 days).

    A pure function of the expression (read over eight days, or three runs for a rarer
    schedule, from a fixed Monday), so every process gives the same answer.
    """
    runs = croniter(expression, PERIOD_REFERENCE.timestamp())
    end = (PERIOD_REFERENCE + PERIOD_HORIZON).timestamp()
    previous, gap, seen = runs.get_next(float), 0.0, 1
    while previous < end or seen < 3:
        current = runs.get_next(float)
        gap, previous, seen = max(gap, current - previous), current, seen + 1
    return timedelta(seconds=gap)


def overdue_grace():
    minutes = getattr(settings, "CRON_OVERDUE_GRACE_MINUTES", None)
    return timedelta(minutes=minutes) if minutes is not None else DEFAULT_GRACE


def missed_since(expression, *, last_started, now, grace=None):
    """The scheduled time the job missed, or None when it is on time.

    A job is on time when it started at or after the latest scheduled time that is more
    than `grace` ago. `last_started` is None for a job that never ran.
    """
    grace = overdue_grace() if grace is None else grace
    due = last_due(expression, now=now - grace)
    if last_started is not None and last_started >= due:
        return None
    return due
