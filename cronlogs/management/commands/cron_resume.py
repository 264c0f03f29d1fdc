import getpass
import socket

from django.core.management.base import BaseCommand, CommandError

from cronlogs.jobs import JOBS
from cronlogs.pausing import PauseError, resume_job


class Command(BaseCommand):
    help = "Resume a paused job: its next trigger runs it again."

    def add_arguments(self, parser):
        parser.add_argument("job", choices=list(JOBS), help="The job (its cronType).")
        parser.add_argument("--by", default=None, help="Who resumes it (default: this user@host).")

    def handle(self, *args, **options):
        by = options["by"] or f"{getpass.getuser()}@{socket.gethostname()}"
        try:
            resume_job(options["job"], by=by)
        except PauseError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{options['job']}: resumed by {by}."))
