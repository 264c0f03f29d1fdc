from cronlogs.commands import JobCommand


class Command(JobCommand):
    job_name = "reconcile-payouts"
