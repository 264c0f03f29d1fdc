from cronlogs.commands import JobCommand


class Command(JobCommand):
    job_name = "cleanup-daily-rooms"
