import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cronlogs.status import all_job_statuses


class Command(BaseCommand):
    help = (
        "Show each job's schedule (and its meaning), last run, status, duration, items, next "
        "run and whether it is overdue. Exits non-zero when a job is overdue or its last run "
        "failed, so it can serve as a monitoring check."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")

    def handle(self, *args, **options):
        statuses = all_job_statuses(now=timezone.now())
        if options["json"]:
            self.stdout.write(json.dumps([status.to_dict() for status in statuses], indent=2))
        else:
            self.stdout.write(render_table(statuses))
        unhealthy = [status for status in statuses if not status.healthy]
        if unhealthy:
            raise CommandError(
                "; ".join(f"{status.name}: {', '.join(status.problems)}" for status in unhealthy)
            )


def render_table(statuses):
    header = (
        "job",
        "schedule",
        "last run (UTC)",
        "status",
        "duration",
        "items",
        "next run (UTC)",
        "",
    )
    rows = [header]
    for status in statuses:
        run = status.last_run
        duration = status.last_context("duration")
        rows.append(
            (
                status.name,
                f"{status.schedule}  ({status.schedule_text})",
                "-" if run is None else f"{run.created_at:%Y-%m-%d %H:%M:%S}",
                status.last_status,
                "-" if duration is None else f"{duration / 1000:.2f}s",
                "-" if run is None else str(status.last_context("itemsProcessed") or 0),
                f"{status.next_run:%Y-%m-%d %H:%M}",
                ", ".join(
                    flag
                    for flag, on in (("OVERDUE", status.overdue), ("FAILING", status.failing))
                    if on
                )
                or ("running" if status.running else "ok" if run else "waiting for first run"),
            )
        )
    widths = [max(len(row[index]) for row in rows) for index in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
