"""The admin's payout audit trail: every PAYOUT_AUDIT row, filterable by payout; each
payout's page links here (`?payout=<id>`)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from cronlogs.admin import LogAdminBase
from cronlogs.models import ContextKey
from payouts import audit
from payouts.models import PayoutAudit


class PayoutIdFilter(admin.SimpleListFilter):
    """By `context->>'payoutId'`; the payout's page links here."""

    title = "payout"
    parameter_name = "payout"

    def lookups(self, request, model_admin):
        value = (request.GET.get(self.parameter_name) or "").strip()
        return [(value, f"#{value}")] if value.isdigit() and len(value) < 19 else []

    def queryset(self, request, queryset):
        if self.value():
            return queryset.alias(payout_id=ContextKey("payoutId")).filter(
                payout_id=str(self.value())
            )
        return queryset


@admin.register(PayoutAudit)
class PayoutAuditAdmin(LogAdminBase):
    list_display = ("time", "payout_link", "action", "staff", "changes")
    list_filter = (PayoutIdFilter, "created_at")
    search_help_text = "A number finds the rows of that payout; other text searches the messages."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("#")
        if term.isdigit() and len(term) < 19:
            return queryset.alias(payout_id=ContextKey("payoutId")).filter(payout_id=term), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="payout")
    def payout_link(self, obj):
        payout_id = obj.context.get("payoutId")
        if payout_id in (None, ""):
            return "-"
        url = reverse("admin:payouts_payout_change", args=[payout_id])
        return format_html('<a href="{}">#{}</a>', url, payout_id)

    @admin.display(description="action")
    def action(self, obj):
        return audit.ACTIONS.get(obj.context.get("action"), self.context_value(obj, "action"))

    @admin.display(description="by")
    def staff(self, obj):
        return self.context_value(obj, "staffEmail")

    @admin.display(description="changes")
    def changes(self, obj):
        return audit.describe_changes(obj.context) or "-"
