"""System checks for the job registry's overrides and the monitoring settings (`manage.py
check`, and every command).

A bad CRON_SCHEDULE_<JOB> or CRON_MAX_RUNTIME_<JOB> stops `manage.py check`, every job
command and `crontab add` at start-up, with one line naming the variable, instead of
crashing `cron_status` at night or being written into the crontab as it is.
"""

from django.core.checks import Error, register

from cronlogs import pings, sentry
from cronlogs.jobs import JOBS


@register()
def check_job_overrides(app_configs, **kwargs):
    return [
        Error(problem, id="cronlogs.E001")
        for job in JOBS.values()
        for problem in job.configuration_problems()
    ]


@register()
def check_monitoring_settings(app_configs, **kwargs):
    problems = [pings.timeout_problem(), *sentry.settings_problems()]
    return [Error(problem, id="cronlogs.E002") for problem in problems if problem]
