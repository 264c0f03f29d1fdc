from django.apps import AppConfig


class CronlogsConfig(AppConfig):
    name = "cronlogs"
    verbose_name = "Cron jobs and logs"

    def ready(self):
        from cronlogs import checks  # noqa: F401 - registers the system checks
