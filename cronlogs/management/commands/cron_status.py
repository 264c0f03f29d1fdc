import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cronlogs.alerts import review_alerts
from cronlogs.status import all_job_statuses, context_number


class Command(BaseCommand):
    help = (
        "Show each job's state (ok, degraded, failing, overdue, stuck, interrupted, paused, "
        "never-run), schedule and its meaning, last run, status, duration, items and next "
        "run. Exits 1 when a job is unhealthy (failing, overdue, stuck, interrupted, paused "
        "too long), so it can serve as a monitoring check; ADMINS are emailed once per "
        "change of state."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")

    def handle(self, *args, **options):
        statuses = all_job_statuses(now=timezone.now())
        review_alerts(statuses)
        if options["json"]:
            self.stdout.write(json.dumps([status.to_dict() for status in statuses], indent=2))
        else:
            self.stdout.write(render_table(statuses))
        unhealthy = [status for status in statuses if not status.healthy]
        if unhealthy:
            raise CommandError(
                "; ".join(f"{status.name}: {', '.join(status.problems)}" for status in unhealthy)
            )


HEADER = (
    "job",
    "state",
    "schedule",
    "last run (UTC)",
    "status",
    "duration",
    "items",
    "next run (UTC)",
)


def render_table(statuses):
    rows = [HEADER]
    notes = []
    for status in statuses:
        run = status.last_run
        duration = context_number(run, "duration")
        items = context_number(run, "itemsProcessed")
        rows.append(
            (
                status.name,
                status.state.value + ("" if status.healthy else " (!)"),
                f"{status.schedule}  ({status.schedule_text or '?'})",
                "-" if run is None else f"{run.created_at:%Y-%m-%d %H:%M:%S}",
                status.last_status,
                "-" if duration is None else f"{duration / 1000:.2f}s",
                "-" if run is None else str(items or 0),
                "-" if status.next_run is None else f"{status.next_run:%Y-%m-%d %H:%M}",
            )
        )
        notes += [f"{status.name}: {problem}" for problem in status.problems]
    widths = [max(len(row[index]) for row in rows) for index in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)
