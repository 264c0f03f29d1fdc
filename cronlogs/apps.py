from django.apps import AppConfig


class CronlogsConfig(AppConfig):
    name = "cronlogs"
    verbose_name = "Cron jobs and logs"
