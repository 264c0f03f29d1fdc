"""The admin's Jobs page: where each job stands, and a "Run now" button.

It is registered on the `CronJob` proxy so that it sits in the admin index like any model;
its rows are the jobs of `cronlogs.jobs`, its numbers come from `cronlogs.status`, and a
"Run now" goes through the same runner as cron (`trigger: "admin"`).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cronlogs.jobs import JOBS
from cronlogs.runner import RunStatus, run_job
from cronlogs.sparkline import sparkline
from cronlogs.status import all_job_statuses

RUN_PERMISSION = "cronlogs.run_cron_jobs"

MESSAGE_LEVELS = {
    RunStatus.SUCCESS: messages.SUCCESS,
    RunStatus.SKIPPED: messages.WARNING,
    RunStatus.ERROR: messages.ERROR,
}


class JobsPageAdmin(admin.ModelAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.jobs_view), name="cronlogs_cronjob_changelist"),
            path("<str:job_name>/run/", view(self.run_view), name="cronlogs_cronjob_run"),
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
                "chart": sparkline(
                    [run.context.get("duration") or 0 for run in status.recent_runs],
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

    def run_view(self, request, job_name):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(RUN_PERMISSION):
            raise PermissionDenied
        if job_name not in JOBS:
            raise Http404(f"No job called {job_name!r}")
        result = run_job(job_name, trigger="admin")
        message = result.summary()
        if result.log_id:
            url = reverse("admin:cronlogs_cronrun_change", args=[result.log_id])
            message = format_html('{} <a href="{}">View the log row</a>.', message, url)
        self.message_user(request, message, MESSAGE_LEVELS.get(result.status, messages.INFO))
        return HttpResponseRedirect(reverse("admin:cronlogs_cronjob_changelist"))
