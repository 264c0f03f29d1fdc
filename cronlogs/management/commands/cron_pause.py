import getpass
import socket

from django.core.management.base import BaseCommand, CommandError

from cronlogs.jobs import JOBS
from cronlogs.pausing import PauseError, pause_job


class Command(BaseCommand):
    help = (
        "Pause a job: until `cron_resume`, every trigger of it (crontab, command line, HTTP, "
        "admin) does nothing but write a CRON_SKIPPED row naming who paused it and why. A job "
        "paused longer than CRON_PAUSE_ALERT_HOURS (24) turns unhealthy."
    )

    def add_arguments(self, parser):
        parser.add_argument("job", choices=list(JOBS), help="The job (its cronType).")
        parser.add_argument("--reason", required=True, help="Why (shown everywhere it is paused).")
        parser.add_argument("--by", default=None, help="Who pauses it (default: this user@host).")

    def handle(self, *args, **options):
        by = options["by"] or f"{getpass.getuser()}@{socket.gethostname()}"
        try:
            state = pause_job(options["job"], by=by, reason=options["reason"])
        except PauseError as exc:
            raise CommandError(str(exc)) from exc
        since = f"{state.paused_at:%Y-%m-%d %H:%M:%S} UTC"
        self.stdout.write(
            self.style.WARNING(
                f"{options['job']}: paused by {state.paused_by} since {since}: {state.pause_reason}"
            )
        )
