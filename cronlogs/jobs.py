"""The five scheduled jobs: their names, what they do and where their code lives.

A job function has the signature `fn(*, now, dry_run, stats) -> None`. It fills `stats`
as it goes (so a failure still reports what was done) and keeps `stats["itemsProcessed"]`
current. The runner (`cronlogs.runner`) does the rest.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string


class UnknownJobError(KeyError):
    def __str__(self):
        return f"Unknown job {self.args[0]!r}; known jobs: {', '.join(JOBS)}"


@dataclass(frozen=True)
class Job:
    name: str
    function_path: str
    description: str

    @property
    def command(self):
        return self.name.replace("-", "_")

    @property
    def schedule(self):
        return settings.CRON_SCHEDULES[self.name]

    @property
    def function(self):
        return import_string(self.function_path)


JOBS = {
    job.name: job
    for job in (
        Job(
            "cleanup-logs",
            "cronlogs.retention.cleanup_logs",
            "Deletes old log rows: INFO after 30 days, WARNING after 60, ERROR after 90; "
            "CRITICAL rows are kept.",
        ),
        Job(
            "process-payouts",
            "payouts.processing.process_payouts",
            "Pays the payouts staff approved on Stripe and settles the ones in flight.",
        ),
        Job(
            "process-automatic-payouts",
            "payouts.automatic.process_automatic_payouts",
            "Pays out the available balance of creators on a daily or weekly schedule.",
        ),
        Job(
            "cleanup-daily-rooms",
            "bookings.room_cleanup.cleanup_daily_rooms",
            "Deletes the Daily.co video rooms of completed and cancelled bookings.",
        ),
        Job(
            "send-booking-reminders",
            "bookings.reminders.send_due_reminders",
            "Emails the client and the creator 15 minutes before their call.",
        ),
    )
}


def get_job(name):
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJobError(name) from None
