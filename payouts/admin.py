"""Admin for payouts: approve, reject (with a reason) and pay the approved ones now.

Decisions go through `payouts.lifecycle` (conditional updates that never overwrite a
payout that moved on) and paying through `payouts.processing`, the code of the
process-payouts job, so a payout paid from here is paid exactly as cron would.
"""

from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from cronlogs.admin_jobs import run_as_staff, run_message
from cronlogs.runner import RunStatus
from payouts.lifecycle import PayoutStateError, approve_payout, reject_payout
from payouts.models import Payout
from payouts.processing import pay_approved_payouts


class RejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Stored on the payout as its failure reason.",
    )


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "creator",
        "amount",
        "currency",
        "status",
        "automatic",
        "requested_at",
        "approved_at",
        "approved_by",
        "paid_at",
    )
    list_filter = (
        "status",
        ("flagged_at", admin.EmptyFieldListFilter),
        "automatic",
        "requested_at",
    )
    list_select_related = ("creator__user", "approved_by")
    search_fields = ("creator__user__email", "creator__user__name", "stripe_payout_id")
    raw_id_fields = ("creator", "approved_by")
    ordering = ("-requested_at",)
    show_full_result_count = False
    # Status changes happen through the actions, which guard each transition.
    readonly_fields = (
        "status",
        "stripe_payout_id",
        "requested_at",
        "approved_at",
        "approved_by",
        "paid_at",
        "failed_at",
        "failure_reason",
        "idempotency_key",
        "claimed_at",
        "flagged_at",
    )
    actions = ["approve_payouts", "reject_payouts", "pay_approved_now"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.flagged_at:
            # A flagged payout waits for staff to find it on Stripe (docs/PAYOUTS.md): they
            # may then enter its Stripe id, or settle its status by hand.
            return tuple(f for f in self.readonly_fields if f not in ("status", "stripe_payout_id"))
        return self.readonly_fields

    @admin.action(description="Approve the selected payouts", permissions=["change"])
    def approve_payouts(self, request, queryset):
        approved, refused = 0, []
        for payout in queryset:
            try:
                approve_payout(payout, by=request.user)
                approved += 1
            except PayoutStateError as exc:
                refused.append(str(exc))
        if approved:
            self.message_user(
                request,
                f"Approved {approved} payout(s); process-payouts pays them on its next run.",
                messages.SUCCESS,
            )
        if refused:
            self.message_user(request, " ".join(refused), messages.WARNING)

    @admin.action(description="Reject the selected payouts…", permissions=["change"])
    def reject_payouts(self, request, queryset):
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            rejected, refused = 0, []
            for payout in queryset:
                try:
                    reject_payout(payout, by=request.user, reason=form.cleaned_data["reason"])
                    rejected += 1
                except PayoutStateError as exc:
                    refused.append(str(exc))
            if rejected:
                self.message_user(request, f"Rejected {rejected} payout(s).", messages.SUCCESS)
            if refused:
                self.message_user(request, " ".join(refused), messages.WARNING)
            return None
        # First step (or no reason given): ask for the reason, then come back here.
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject payouts",
            "opts": self.model._meta,
            "payouts": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "reject_payouts",
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/payouts/payout/reject_payouts.html", context)

    @admin.action(description="Pay the selected approved payouts now", permissions=["change"])
    def pay_approved_now(self, request, queryset):
        ids = list(queryset.filter(status=Payout.Status.APPROVED).values_list("pk", flat=True))
        if not ids:
            self.message_user(
                request, "None of the selected payouts is approved.", messages.WARNING
            )
            return
        task = partial(pay_approved_payouts, payout_ids=ids)
        result = run_as_staff(request, "process-payouts", task=task)
        if result.status == RunStatus.SKIPPED or (result.failed and not result.stats):
            self.message_user(request, run_message(result), messages.ERROR)
            return
        stats = result.stats
        summary = (
            f"Payouts: {stats.get('succeeded', 0)} sent to Stripe, {stats.get('failed', 0)} "
            f"failed, {stats.get('skipped', 0)} skipped"
        )
        details = [
            f"#{item.get('payoutId')}: {item.get('reason') or item.get('error')}"
            for item in [*stats.get("errors", []), *stats.get("skippedPayouts", [])]
        ]
        if details:
            summary += f" ({'; '.join(details)})"
        if result.error:
            summary += f"; {result.error}"
        level = messages.ERROR if stats.get("failed") or result.failed else messages.SUCCESS
        self.message_user(request, f"{summary}.", level)
