"""The shell every job's management command shares: options, output, exit code.

A job's command is five lines: subclass `JobCommand` and name the job. Its help, options
and behaviour come from the job's registry entry and the shared runner.
"""

import inspect
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from cronlogs.jobs import get_job
from cronlogs.runner import RunStatus, run_job


class JobCommand(BaseCommand):
    """Run one job through the shared runner. Subclasses only set `job_name`."""

    job_name = None

    @property
    def help(self):
        job = get_job(self.job_name)
        selection = inspect.getdoc(job.function) or ""
        needs = (
            f" Needs {' and '.join(job.required_settings)} (a dry run does not)."
            if job.required_settings
            else ""
        )
        return (
            f"{job.description} {' '.join(selection.split())} Meant to run from cron (default "
            f"schedule '{job.default_schedule}', override with {job.setting_name('SCHEDULE')}; "
            f"max runtime {job.default_max_runtime_minutes:g} min, override with "
            f"{job.setting_name('MAX_RUNTIME')}).{needs} Every run is recorded in the Log "
            "table; a run that finds the job paused, or already running on any server, does "
            "nothing and exits 0. Exits 1 if the run fails. -v 2 lists every item done."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would be done without sending, paying, deleting or writing anything.",
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
            # What a dry run would do is its point; a real run lists its items on -v 2.
            if options["verbosity"] > (0 if result.dry_run else 1):
                for line in result.details:
                    self.stdout.write(f"  {line}")
            self.stdout.write(styled_summary(self.style, result))
        if result.failed:
            raise CommandError(f"{self.job_name} failed: {result.error} (see Log #{result.log_id})")


def styled_summary(style, result):
    """A run's summary line, red if it failed, yellow if degraded or skipped."""
    paint = {
        RunStatus.ERROR: style.ERROR,
        RunStatus.DEGRADED: style.WARNING,
        RunStatus.SKIPPED: style.WARNING,
    }.get(result.status, style.SUCCESS)
    return paint(result.summary())
