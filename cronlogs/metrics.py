"""Prometheus metrics of the jobs, read from the database at scrape time.

`GET /api/cron/metrics` (cronlogs.views) renders them through the official client: a fresh
registry and collector per request, nothing kept in process memory, so every gunicorn
worker answers the same. Every series carries `job` (the cronType), except the log-row rate:

    callastar_cron_last_run_timestamp_seconds      when the last run (success, degraded or
                                                   error) ended
    callastar_cron_last_success_timestamp_seconds  when the last run that was not an error
                                                   ended (success or degraded)
    callastar_cron_last_duration_seconds           how long the last run took
    callastar_cron_last_items_processed            what it processed
    callastar_cron_runs_total{outcome}             runs ended in success, degraded, error,
                                                   skipped (cronlogs.models.RunCount)
    callastar_cron_healthy                         1 healthy, 0 not (cronlogs.status)
    callastar_cron_state{state}                    1 for the job's state, 0 for the others
    callastar_cron_running                         1 while a run holds the job's lock
    callastar_cron_period_seconds                  the longest time between two scheduled
                                                   runs (for "no success in 2 periods")
    callastar_log_rows_last_hour{type}             Log rows written in the last hour

The last-run series are absent for a job that never ran. Each query walks an index
(cronType or type, then createdAt), so a scrape costs the same at 10k or 1M Log rows.
"""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from cronlogs.models import Log, RunCount
from cronlogs.schedule import longest_gap, validate_schedule
from cronlogs.status import State, all_job_statuses, context_number

OUTCOMES = ("success", "degraded", "error", "skipped")


def render_metrics(accept_header=""):
    """The metrics in the format the scraper asked for: (body bytes, content type)."""
    registry = CollectorRegistry()
    registry.register(JobsCollector())
    encoder, content_type = choose_encoder(accept_header)
    return encoder(registry), content_type


class JobsCollector:
    """A prometheus_client custom collector over the Log table, for one scrape."""

    def collect(self):
        now = timezone.now()
        statuses = all_job_statuses(now=now)
        gauges = {
            name: GaugeMetricFamily(f"callastar_cron_{name}", text, labels=["job"])
            for name, text in (
                ("last_run_timestamp_seconds", "When the job's last run ended (Unix time)."),
                (
                    "last_success_timestamp_seconds",
                    "When the job's last successful (or degraded) run ended (Unix time).",
                ),
                ("last_duration_seconds", "How long the job's last run took."),
                ("last_items_processed", "Items the job's last run processed."),
                ("healthy", "1 if the job is healthy, 0 if not."),
                ("running", "1 while a run of the job holds its lock."),
                ("period_seconds", "The longest time between two scheduled runs of the job."),
            )
        }
        state = GaugeMetricFamily(
            "callastar_cron_state", "1 for the job's current state.", labels=["job", "state"]
        )
        for status in statuses:
            job = [status.name]
            finished = status.last_finished
            if finished is not None:
                ended = finished.created_at.timestamp()
                gauges["last_run_timestamp_seconds"].add_metric(job, ended)
                duration = _duration_seconds(finished)
                if duration is not None:
                    gauges["last_duration_seconds"].add_metric(job, duration)
                items = context_number(finished, "itemsProcessed")
                if items is not None:
                    gauges["last_items_processed"].add_metric(job, items)
            success = _last_success(status)
            if success is not None:
                gauges["last_success_timestamp_seconds"].add_metric(job, success.timestamp())
            gauges["healthy"].add_metric(job, 1 if status.healthy else 0)
            gauges["running"].add_metric(job, 1 if status.running else 0)
            period = _period_seconds(status.schedule)
            if period is not None:
                gauges["period_seconds"].add_metric(job, period)
            current = status.state
            for each in State:
                state.add_metric([status.name, each.value], 1 if each == current else 0)
        yield from gauges.values()
        yield state
        yield _runs_total(statuses)
        yield _log_rows_last_hour(now)


def _duration_seconds(row):
    seconds = context_number(row, "durationSeconds")
    if seconds is not None:
        return seconds
    milliseconds = context_number(row, "duration")
    return None if milliseconds is None else milliseconds / 1000


def _last_success(status):
    finished = status.last_finished
    if finished is not None and finished.type == Log.Type.CRON_RUN:
        return finished.created_at
    if finished is None:
        return None
    return (
        Log.objects.for_job(status.name)
        .filter(type=Log.Type.CRON_RUN)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def _period_seconds(schedule):
    try:
        validate_schedule(schedule)
    except ValueError:
        return None
    return longest_gap(schedule).total_seconds()


def _runs_total(statuses):
    family = CounterMetricFamily(
        "callastar_cron_runs",
        "Runs of the job by outcome, counted as they end (retention does not lower it).",
        labels=["job", "outcome"],
    )
    names = [status.name for status in statuses]
    totals = {
        (job, outcome): total
        for job, outcome, total in RunCount.objects.filter(job__in=names).values_list(
            "job", "outcome", "total"
        )
    }
    for job in names:
        for outcome in OUTCOMES:
            family.add_metric([job, outcome], totals.get((job, outcome), 0))
    return family


def _log_rows_last_hour(now):
    family = GaugeMetricFamily(
        "callastar_log_rows_last_hour", "Log rows written in the last hour.", labels=["type"]
    )
    counts = dict.fromkeys(Log.Type.values, 0)
    rows = (
        Log.objects.filter(created_at__gte=now - timedelta(hours=1))
        .order_by()
        .values_list("type")
        .annotate(rows=Count("id"))
    )
    counts.update(dict(rows))
    for log_type, rows in sorted(counts.items()):
        family.add_metric([log_type], rows)
    return family
