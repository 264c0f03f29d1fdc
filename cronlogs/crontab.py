"""Entry point for django-crontab (`settings.CRONJOBS`)."""

from cronlogs.runner import run_job


def run_scheduled_job(name):
    """Run a job with trigger "cron". Failures are recorded and alerted by the runner;
    raising makes django-crontab's `crontab run` exit non-zero too."""
    result = run_job(name, trigger="cron")
    if result.failed:
        raise RuntimeError(f"{name} failed: {result.error} (see Log #{result.log_id})")
    return result
