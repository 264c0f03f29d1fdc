"""The admin's Jobs page: where each job stands, "Run now", and pause / resume.

It is registered on the `CronJob` proxy so that it sits in the admin index like any model;
its rows are the jobs of the registry, their states come from `cronlogs.status`, and a
"Run now" goes through the same runner as cron (`trigger: "admin"`, `triggeredBy`).
`run_as_staff` is how every admin action that does a job's work runs it.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cronlogs.admin_selection import ValidSelectionMixin
from cronlogs.jobs import JOBS
from cronlogs.pausing import PauseError, pause_job, resume_job
from cronlogs.runner import RunStatus, run_job
from cronlogs.sparkline import sparkline
from cronlogs.status import State, all_job_statuses, context_number, context_text

RUN_PERMISSION = "cronlogs.run_cron_jobs"

MESSAGE_LEVELS = {
    RunStatus.SUCCESS: messages.SUCCESS,
    RunStatus.DEGRADED: messages.WARNING,
    RunStatus.SKIPPED: messages.WARNING,
    RunStatus.ERROR: messages.ERROR,
}


def staff_name(request):
    return request.user.get_username()


def run_as_staff(request, job_name, *, task=None):
    """Run (part of) a job's work for a staff action: under the job's lock, with one run
    row saying `trigger: "admin"` and who. A job that is running or paused is not raced:
    the result says it was skipped, and the caller says so."""
    return run_job(job_name, trigger="admin", triggered_by=staff_name(request), task=task)


def run_message(result):
    """The admin message for a run: its summary and a link to its log row."""
    if result.status == RunStatus.SKIPPED:
        text = f"{result.job} was not run: {result.skip_detail}."
    else:
        text = result.summary()
    if result.log_id:
        url = reverse("admin:cronlogs_cronrun_change", args=[result.log_id])
        return format_html('{} <a href="{}">View the log row</a>.', text, url)
    return text


STATE_FLAGS = {State.OK: "ok", State.DEGRADED: "warn", State.PAUSED: "warn"}


class JobsPageAdmin(ValidSelectionMixin, admin.ModelAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.jobs_view), name="cronlogs_cronjob_changelist"),
            path("<str:job_name>/run/", view(self.run_view), name="cronlogs_cronjob_run"),
            path("<str:job_name>/pause/", view(self.pause_view), name="cronlogs_cronjob_pause"),
            path("<str:job_name>/resume/", view(self.resume_view), name="cronlogs_cronjob_resume"),
        ]

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("cronlogs.view_log") or super().has_view_permission(
            request, obj
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def jobs_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        statuses = all_job_statuses(with_recent_runs=True)
        rows = [
            {
                "status": status,
                "state": status.state.value,
                "flag": STATE_FLAGS.get(status.state, "quiet") if status.healthy else "bad",
                "duration": context_number(status.last_run, "duration"),
                "items": context_number(status.last_run, "itemsProcessed"),
                "trigger": context_text(status.last_run, "trigger"),
                "chart": sparkline(
                    [context_number(run, "duration") or 0 for run in status.recent_runs],
                    failed=[run.type == "CRON_ERROR" for run in status.recent_runs],
                ),
                "runs_url": reverse("admin:cronlogs_cronrun_changelist") + f"?job={status.name}",
                "last_run_url": status.last_run
                and reverse("admin:cronlogs_cronrun_change", args=[status.last_run.pk]),
            }
            for status in statuses
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Jobs",
            "subtitle": None,
            "opts": self.model._meta,
            "rows": rows,
            "can_run": request.user.has_perm(RUN_PERMISSION),
        }
        return TemplateResponse(request, "admin/cronlogs/jobs.html", context)

    def _checked_post(self, request, job_name):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(RUN_PERMISSION):
            raise PermissionDenied
        if job_name not in JOBS:
            raise Http404(f"No job called {job_name!r}")
        return None

    def _back(self):
        return HttpResponseRedirect(reverse("admin:cronlogs_cronjob_changelist"))

    def run_view(self, request, job_name):
        return self._staff_post(request, job_name, self._run)

    def pause_view(self, request, job_name):
        return self._staff_post(request, job_name, self._pause)

    def resume_view(self, request, job_name):
        return self._staff_post(request, job_name, self._resume)

    def _staff_post(self, request, job_name, act):
        """A Jobs page button: a POST by staff with the run permission, about a known job;
        `act` says what happened, then back to the page."""
        refused = self._checked_post(request, job_name)
        if refused:
            return refused
        self.message_user(request, *act(request, job_name))
        return self._back()

    def _run(self, request, job_name):
        result = run_as_staff(request, job_name)
        return run_message(result), MESSAGE_LEVELS.get(result.status)

    def _pause(self, request, job_name):
        try:
            pause_job(job_name, by=staff_name(request), reason=request.POST.get("reason", ""))
        except PauseError as exc:
            return f"{job_name} was not paused: {exc}", messages.ERROR
        return (
            f"{job_name} is paused: every trigger now does nothing until it is resumed.",
            messages.WARNING,
        )

    def _resume(self, request, job_name):
        try:
            resume_job(job_name, by=staff_name(request))
        except PauseError as exc:
            return str(exc), messages.WARNING
        return f"{job_name} is resumed.", messages.SUCCESS
