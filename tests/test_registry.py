"""The job registry is the one definition of a job; everything else agrees with it."""

import importlib
import inspect
import re
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command, get_commands, load_command_class

from cronlogs.commands import JobCommand
from cronlogs.jobs import JOBS
from tests.processes import PROJECT_DIR, run_manage


def test_every_job_has_a_five_line_command_of_its_own():
    commands = get_commands()
    for job in JOBS.values():
        name = job.name.replace("-", "_")
        command = load_command_class(commands[name], name)
        # It should be the shared shell, naming its job and nothing else.
        assert isinstance(command, JobCommand) and command.job_name == job.name
        source = inspect.getsource(importlib.import_module(type(command).__module__))
        assert len(source.strip().splitlines()) <= 5


def test_every_service_exists_and_documents_its_selection():
    for job in JOBS.values():
        assert callable(job.function), job.service
        assert inspect.getdoc(job.function), f"{job.service} says what it selects"
        assert list(inspect.signature(job.function).parameters)[0] == "run"


@pytest.mark.parametrize("path", [".env.example", "README.md", "docs/CRON_SCHEDULE.md"])
def test_the_docs_name_every_job_with_its_default_schedule(path):
    text = (Path(PROJECT_DIR) / path).read_text()
    for job in JOBS.values():
        assert job.name in text or job.setting_name("SCHEDULE") in text, (path, job.name)
        assert job.default_schedule in text, (path, job.name)
    if path == ".env.example":
        for job in JOBS.values():
            assert f"# {job.setting_name('SCHEDULE')}={job.default_schedule}" in text
            max_runtime = f"{job.default_max_runtime_minutes:g}"
            assert f"# {job.setting_name('MAX_RUNTIME')}={max_runtime}" in text


def test_the_help_of_a_job_command_comes_from_its_entry(capsys):
    job = JOBS["send-booking-reminders"]
    with pytest.raises(SystemExit):
        call_command("send_booking_reminders", "--help")

    text = " ".join(capsys.readouterr().out.split())
    # It should say what the job does and selects, its defaults and the variables to override.
    assert job.description in text
    assert "starts within the next 20 minutes" in text
    for fact in ("'*/5 * * * *'", "CRON_SCHEDULE_SEND_BOOKING_REMINDERS", "max runtime 4 min"):
        assert fact in text
    assert "CRON_MAX_RUNTIME_SEND_BOOKING_REMINDERS" in text


def test_a_bad_schedule_fails_the_system_check_naming_the_variable(settings):
    settings.CRON_SCHEDULE_CLEANUP_LOGS = "every day"

    errors = [error for error in run_checks() if error.id == "cronlogs.E001"]

    assert [error.msg for error in errors] == [
        "CRON_SCHEDULE_CLEANUP_LOGS='every day': expected a five-field cron expression "
        "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *'"
    ]


def test_a_bad_max_runtime_fails_the_system_check(settings):
    settings.CRON_MAX_RUNTIME_SEND_BOOKING_REMINDERS = "0"

    errors = [error.msg for error in run_checks() if error.id == "cronlogs.E001"]

    assert len(errors) == 1 and errors[0].startswith("CRON_MAX_RUNTIME_SEND_BOOKING_REMINDERS='0'")


@pytest.mark.parametrize("command", [["check"], ["cleanup_logs"], ["crontab", "show"]])
def test_a_bad_schedule_in_the_environment_stops_every_command(subprocess_env, command):
    env = {**subprocess_env, "CRON_SCHEDULE_CLEANUP_LOGS": "every day"}

    finished = run_manage(command, env)

    # It should refuse before any work, naming the variable, without a traceback.
    assert finished.returncode == 1
    assert "CRON_SCHEDULE_CLEANUP_LOGS='every day'" in finished.stderr
    assert "Traceback" not in finished.stderr
    named = [line for line in finished.stderr.splitlines() if "CRON_SCHEDULE_" in line]
    assert len(named) == 1


def test_the_crontab_lines_follow_the_registry():
    from django.conf import settings

    lines = {args[0]: schedule for schedule, _, args in settings.CRONJOBS}
    assert lines == {job.name: job.schedule for job in JOBS.values()}
    assert all(re.fullmatch(r"\S+( \S+){4}", schedule) for schedule in lines.values())
