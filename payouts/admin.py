"""Admin for payouts: requests, approve / reject, pay now, and flagged payouts settled or
failed against Stripe; the audit trail of all of it.

Staff never edit a payout's status: a request's terms (creator, amount, currency) are
editable while it is REQUESTED, and every later change goes through an action — each a
service in `payouts.lifecycle`, `payouts.flagged` or the process-payouts job's code, each
needing its own permission and writing a PAYOUT_AUDIT row (`payouts.audit`).
"""

from functools import partial

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from cronlogs.admin_jobs import run_as_staff, run_message
from cronlogs.admin_selection import ValidSelectionMixin
from cronlogs.runner import RunStatus
from payouts import audit
from payouts.admin_audit import PayoutAuditAdmin  # noqa: F401 - registers its page
from payouts.flagged import mark_flagged_payout_failed, settle_flagged_payout
from payouts.forms import ConfirmForm, PayoutForm, RejectForm, StripePayoutIdForm
from payouts.lifecycle import (
    PayoutActionRefused,
    approve_payout,
    create_payout_request,
    edit_payout_request,
    reject_payout,
)
from payouts.models import Payout
from payouts.processing import pay_approved_payouts

AUDIT_ROWS_SHOWN = 20
TERMS = ("creator", "amount", "currency")


@admin.register(Payout)
class PayoutAdmin(ValidSelectionMixin, admin.ModelAdmin):
    form = PayoutForm
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
    raw_id_fields = ("creator",)
    ordering = ("-requested_at",)
    show_full_result_count = False
    fieldsets = (
        ("Terms (editable while the payout is REQUESTED)", {"fields": TERMS}),
        (
            "Lifecycle (changed only by the actions)",
            {
                "fields": (
                    "status",
                    "automatic",
                    "requested_at",
                    ("approved_at", "approved_by"),
                    ("claimed_at", "idempotency_key"),
                    "stripe_payout_id",
                    "flagged_at",
                    ("paid_at", "failed_at"),
                    "failure_reason",
                    "metadata",
                )
            },
        ),
        ("Audit trail", {"fields": ("audit_trail",)}),
    )
    readonly_fields = (
        "status",
        "automatic",
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
        "metadata",
        "audit_trail",
    )
    actions = [
        "approve_payouts",
        "reject_payouts",
        "pay_approved_now",
        "settle_with_stripe_id",
        "mark_failed",
    ]

    # --- who may do what ---------------------------------------------------------------

    def has_change_permission(self, request, obj=None):
        # Past REQUESTED a payout's page is read-only, and a POST to it is refused (403).
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.editable)

    def has_delete_permission(self, request, obj=None):
        # Only a request nobody acted on may disappear; anything later is history.
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or obj.editable)

    def has_approve_permission(self, request):
        return request.user.has_perm("payouts.approve_payout")

    def has_pay_permission(self, request):
        return request.user.has_perm("payouts.pay_payout")

    def has_settle_permission(self, request):
        return request.user.has_perm("payouts.settle_payout")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": TERMS}),)
        return super().get_fieldsets(request, obj)

    # --- create and edit a request -----------------------------------------------------

    def save_model(self, request, obj, form, change):
        try:
            if change:
                terms = {name: form.cleaned_data[name] for name in TERMS}
                edit_payout_request(obj, by=request.user, **terms)
            else:
                create_payout_request(obj, by=request.user)
        except PayoutActionRefused as exc:
            # Approved (or rejected) between the form's checks and this save.
            raise PermissionDenied(str(exc)) from None

    def delete_model(self, request, obj):
        self.delete_queryset(request, Payout.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        for payout in queryset.filter(status=Payout.Status.REQUESTED):
            before = audit.snapshot(payout)
            audit.record_action(payout, by=request.user, action="delete", before=before, after={})
            payout.delete()

    @admin.display(description="staff actions on this payout")
    def audit_trail(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        rows = list(audit.audit_rows(obj.pk)[:AUDIT_ROWS_SHOWN])
        if not rows:
            return "None yet."
        link = reverse("admin:payouts_payoutaudit_changelist") + f"?payout={obj.pk}"
        table = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{timezone.localtime(row.created_at):%Y-%m-%d %H:%M:%S}",
                    audit.ACTIONS.get(row.context.get("action"), row.context.get("action")),
                    row.context.get("staffEmail", "-"),
                    audit.describe_changes(row.context) or "-",
                )
                for row in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>time</th><th>action</th><th>by</th><th>changes</th></tr>"
            '</thead><tbody>{}</tbody></table><p><a href="{}">Every audit row of this payout'
            "</a></p>",
            table,
            link,
        )

    # --- decisions -----------------------------------------------------------------------

    def _report(self, request, done, refused, done_text):
        if done:
            self.message_user(request, done_text.format(count=done), messages.SUCCESS)
        if refused:
            self.message_user(request, " ".join(refused), messages.WARNING)

    @admin.action(description="Approve the selected payouts", permissions=["approve"])
    def approve_payouts(self, request, queryset):
        approved, refused = 0, []
        for payout in queryset.select_related("creator"):
            try:
                approve_payout(payout, by=request.user)
                approved += 1
            except PayoutActionRefused as exc:
                refused.append(str(exc))
        self._report(
            request,
            approved,
            refused,
            "Approved {count} payout(s); process-payouts pays them on its next run.",
        )

    def _step(self, request, queryset, *, action, title, intro, form, submit_label):
        """The intermediate page of an action: what it will do, and its form."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": self.model._meta,
            "payouts": queryset.select_related("creator__user"),
            "form": form,
            "submit_label": submit_label,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": action,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/payouts/payout/payout_action.html", context)

    @admin.action(description="Reject the selected payouts…", permissions=["approve"])
    def reject_payouts(self, request, queryset):
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._step(
                request,
                queryset,
                action="reject_payouts",
                title="Reject payouts",
                intro="These payouts will be rejected; the creator is not paid. Only requested "
                "or approved payouts can be rejected.",
                form=form,
                submit_label="Reject payouts",
            )
        rejected, refused = 0, []
        for payout in queryset:
            try:
                reject_payout(payout, by=request.user, reason=form.cleaned_data["reason"])
                rejected += 1
            except PayoutActionRefused as exc:
                refused.append(str(exc))
        self._report(request, rejected, refused, "Rejected {count} payout(s).")
        return None

    @admin.action(description="Pay the selected approved payouts now", permissions=["pay"])
    def pay_approved_now(self, request, queryset):
        ids = list(queryset.filter(status=Payout.Status.APPROVED).values_list("pk", flat=True))
        if not ids:
            self.message_user(
                request, "None of the selected payouts is approved.", messages.WARNING
            )
            return
        before = audit.snapshots(ids)
        task = partial(pay_approved_payouts, payout_ids=ids)
        result = run_as_staff(request, "process-payouts", task=task)
        audit.record_each(
            ids, by=request.user, action="pay_now", before=before, note=_run_note(result)
        )
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

    # --- flagged payouts ---------------------------------------------------------------

    @admin.action(description="Settle a flagged payout with its Stripe id…", permissions=["settle"])
    def settle_with_stripe_id(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one flagged payout to settle.", messages.WARNING
            )
            return None
        form = StripePayoutIdForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._step(
                request,
                queryset,
                action="settle_with_stripe_id",
                title="Settle a flagged payout with its Stripe id",
                intro="Find this payout on the creator's connected account in the Stripe "
                "dashboard (its metadata payoutId is the payout's number) and paste its id. "
                "Stripe is asked for it on that account; it is recorded only if its amount, "
                "currency and payoutId are this payout's, and the payout then follows its "
                "status on Stripe.",
                form=form,
                submit_label="Check with Stripe and settle",
            )
        payout = queryset.get()
        try:
            payout, remote = settle_flagged_payout(
                payout, form.cleaned_data["stripe_payout_id"], by=request.user
            )
        except PayoutActionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self.message_user(
            request,
            f"Payout #{payout.pk} is Stripe payout {remote.id}, which Stripe reports "
            f"{remote.status}: it is now {payout.status}.",
            messages.SUCCESS,
        )
        return None

    @admin.action(
        description="Mark flagged payouts failed (if Stripe has none)…", permissions=["settle"]
    )
    def mark_failed(self, request, queryset):
        form = ConfirmForm(request.POST if "apply" in request.POST else None)
        if "apply" not in request.POST:
            return self._step(
                request,
                queryset,
                action="mark_failed",
                title="Mark flagged payouts failed",
                intro="Stripe is asked for every payout on each creator's connected account "
                "since the claim. A payout is marked FAILED (never created on Stripe) only if "
                "none carries its payoutId; the creator can then request it again.",
                form=form,
                submit_label="Check with Stripe and mark failed",
            )
        failed, refused = 0, []
        for payout in queryset:
            try:
                mark_flagged_payout_failed(payout, by=request.user)
                failed += 1
            except PayoutActionRefused as exc:
                refused.append(str(exc))
        self._report(
            request, failed, refused, "Marked {count} payout(s) failed: none exists on Stripe."
        )
        return None


def _run_note(result):
    if result.status == RunStatus.SKIPPED:
        return f"process-payouts not run: {result.skip_detail}"
    note = f"process-payouts run {result.run_id}: {result.status}"
    return f"{note}: {result.error}" if result.error else note
