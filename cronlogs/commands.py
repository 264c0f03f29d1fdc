"""The shell every job's management command shares: options, output, exit code."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from cronlogs.jobs import get_job
from cronlogs.runner import run_job


class JobCommand(BaseCommand):
    """Run one job through the shared runner. Subclasses only set `job_name`."""

    job_name = None

    @property
    def help(self):
        job = get_job(self.job_name)
        return (
            f"{job.description} Meant to run from cron (default schedule '{job.schedule}'). "
            "Every run is recorded in the Log table; a run that finds the same job already "
            "running on any server does nothing and exits 0. Exits non-zero if the job fails."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would be done without sending, calling out or writing anything.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the run's result as a JSON object."
        )
        parser.add_argument(
            "--trigger",
            choices=["cli", "cron"],
            default="cli",
            help="Recorded in the log row as what started the run (default: cli).",
        )

    def handle(self, *args, **options):
        try:
            result = run_job(self.job_name, trigger=options["trigger"], dry_run=options["dry_run"])
        except DatabaseError as exc:
            # Nothing can be logged without a database: say so plainly and exit non-zero.
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise CommandError(
                f"{self.job_name}: database unavailable, the run was not recorded: {first_line}"
            ) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict(), indent=2, default=str))
        else:
            style = self.style.ERROR if result.failed else self.style.SUCCESS
            self.stdout.write(style(result.summary()))
        if result.failed:
            raise CommandError(f"{self.job_name} failed: {result.error} (see Log #{result.log_id})")
