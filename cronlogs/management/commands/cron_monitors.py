from django.core.management.base import BaseCommand

from cronlogs.jobs import JOBS
from cronlogs.pings import expected_check
from cronlogs.sentry import enabled as sentry_enabled
from cronlogs.sentry import monitor_config


class Command(BaseCommand):
    help = (
        "Show how to set up each job's outside monitors for the current settings: the "
        "Healthchecks check (cron schedule or period, and grace), whether CRON_PING_URL_<JOB> "
        "is set (never its value), and the Sentry cron monitor the job upserts when "
        "SENTRY_DSN is set. See docs/MONITORING.md."
    )

    def handle(self, *args, **options):
        rows = [("job", "schedule (UTC)", "period", "grace", "ping URL", "Sentry max runtime")]
        for job in JOBS.values():
            check = expected_check(job)
            rows.append(
                (
                    job.name,
                    check["schedule"],
                    duration_text(check["period"]),
                    duration_text(check["grace"]),
                    f"{job.setting_name('PING_URL')} " + ("set" if job.ping_url else "not set"),
                    f"{monitor_config(job)['max_runtime']} min",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            cells = zip(row, widths, strict=True)
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
            if index == 0:
                self.stdout.write("  ".join("-" * width for width in widths))
        margin = monitor_config(next(iter(JOBS.values())))["checkin_margin"]
        self.stdout.write(
            f"\nSentry: {'on' if sentry_enabled() else 'off (SENTRY_DSN not set)'}; each "
            f"monitor is named after its job, check-in margin {margin} min."
        )


def duration_text(delta):
    minutes = round(delta.total_seconds() / 60)
    for unit, size in (("day", 1440), ("h", 60)):
        if minutes >= size and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''}"
    return f"{minutes} min"
