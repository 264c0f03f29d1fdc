from cronlogs.commands import JobCommand


class Command(JobCommand):
    job_name = "send-booking-reminders"
