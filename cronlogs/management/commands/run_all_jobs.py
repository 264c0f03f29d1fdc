from django.core.management.base import BaseCommand, CommandError

from cronlogs.commands import styled_summary
from cronlogs.jobs import JOBS
from cronlogs.runner import run_job


class Command(BaseCommand):
    help = (
        "Run every job of the registry once, in order, through the shared runner (trigger "
        "cli): a smoke test after a deploy, and what `make demo` runs. With "
        "--dry-run-if-unconfigured, a job whose required settings are missing (e.g. "
        "STRIPE_SECRET_KEY) runs as a dry run instead of failing. Exits 1 if any run failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run-if-unconfigured",
            action="store_true",
            help="Dry-run the jobs whose required settings are not set, instead of failing.",
        )

    def handle(self, *args, **options):
        failed = []
        for job in JOBS.values():
            missing = job.missing_settings()
            dry_run = bool(missing) and options["dry_run_if_unconfigured"]
            note = f" (dry run: {' and '.join(missing)} not set)" if dry_run else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"{job.name}{note}"))
            result = run_job(job.name, trigger="cli", dry_run=dry_run)
            for line in result.details:
                self.stdout.write(f"  {line}")
            self.stdout.write(styled_summary(self.style, result))
            if result.failed:
                failed.append(job.name)
        if failed:
            raise CommandError(f"failed: {', '.join(failed)}")
