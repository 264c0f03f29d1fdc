"""Admin for the Log table: read-only views per kind of row, and the Jobs page.

Built to stay fast with millions of rows: no full-table COUNT (a capped count instead),
filters whose choices are known without a query and that match an index, and no date
hierarchy (it would ask the database for every distinct date).
"""

import json
import math

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from cronlogs.admin_jobs import JobsPageAdmin
from cronlogs.admin_selection import ValidSelectionMixin
from cronlogs.jobs import JOBS
from cronlogs.models import ContextKey, CronJob, CronRun, DailyRoomLog, EmailLog, Log
from cronlogs.status import row_context


def as_number(value):
    """A finite number from a JSON number or numeric text ("1200"), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


class CappedCountPaginator(Paginator):
    """Counts at most `cap` + 1 rows, so a page costs the same on a table of any size."""

    def __init__(self, *args, cap=1000, **kwargs):
        super().__init__(*args, **kwargs)
        self.cap = cap

    @cached_property
    def count(self):
        # COUNT(*) over a LIMITed subquery: the database stops after cap + 1 matching rows.
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self):
        return self.count > self.cap


PAGES_COUNTED_AHEAD = 20
# Beyond any real table (50 million rows at 50 a page), and keeps the count's LIMIT within
# a bigint whatever page number the URL asks for.
MAX_COUNTED_PAGE = 1_000_000


class JobFilter(admin.SimpleListFilter):
    """By `context->>'cronType'`, the expression the (cronType, createdAt) index is on."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request, model_admin):
        return [(name, name) for name in JOBS]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.for_job(self.value())
        return queryset


class TypeFilter(admin.SimpleListFilter):
    """By type, offering only the types the page shows."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        types = getattr(model_admin.model, "TYPES", Log.Type.values)
        return [(value, Log.Type(value).label) for value in types]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(type=self.value())
        return queryset


class LogAdminBase(ValidSelectionMixin, admin.ModelAdmin):
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    ordering = ("-created_at",)
    list_filter = (JobFilter, TypeFilter, "status", "level", "created_at")
    search_fields = ("message",)
    search_help_text = (
        "A number finds the rows of that booking (and the log row with that id); "
        "any other text is searched for in the messages."
    )
    fields = (
        "created_at",
        "type",
        "status",
        "level",
        "message",
        "formatted_context",
        "error_detail",
    )
    readonly_fields = fields

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        # Count 20 pages from the one asked for: enough to page on, never the whole table.
        try:
            page = min(max(int(request.GET.get("p", 1)), 1), MAX_COUNTED_PAGE)
        except ValueError:
            page = 1
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            cap=(page - 1 + PAGES_COUNTED_AHEAD) * per_page,
        )

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        types = getattr(self.model, "TYPES", None)
        return queryset.filter(type__in=types) if types else queryset

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        # Only ASCII digits are a booking number: "²".isdigit() is true, yet int("²") fails.
        if term.isascii() and term.isdigit() and len(term) < 19:
            # Both lookups are index-backed: the bookingId expression index and the key.
            booking = queryset.alias(booking_id=ContextKey("bookingId"))
            return booking.filter(Q(booking_id=term) | Q(pk=int(term))), False
        return queryset.filter(message__icontains=term), False

    # Logs are a record: nobody edits them; only superusers may delete them.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        # "Can view log" opens every log page; the per-page permissions work too.
        return request.user.has_perm("cronlogs.view_log") or super().has_view_permission(
            request, obj
        )

    @admin.display(description="time", ordering="created_at")
    def time(self, obj):
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="context")
    def formatted_context(self, obj):
        text = json.dumps(obj.context, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        return format_html('<pre class="log-json">{}</pre>', text)

    @admin.display(description="error")
    def error_detail(self, obj):
        return format_html("<pre>{}</pre>", obj.error) if obj.error else "-"

    @admin.display(description="booking")
    def booking_link(self, obj):
        booking_id = row_context(obj).get("bookingId")
        if booking_id in (None, ""):
            return "-"
        text = str(booking_id)
        if isinstance(booking_id, bool) or not (text.isascii() and text.isdigit()):
            return text  # Not an id this project writes: shown as it is, not linked.
        url = reverse("admin:bookings_booking_change", args=[text])
        return format_html('<a href="{}">#{}</a>', url, text)

    @admin.display(description="error")
    def short_error(self, obj):
        error = row_context(obj).get("error")
        error = "" if error is None else str(error)
        return error if len(error) <= 80 else f"{error[:79]}…"

    def context_value(self, obj, key):
        value = row_context(obj).get(key)
        return "-" if value in (None, "") else value


@admin.register(Log)
class LogAdmin(LogAdminBase):
    list_display = ("time", "type", "status", "level", "short_message")

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message if len(obj.message) <= 120 else f"{obj.message[:119]}…"


@admin.register(CronRun)
class CronRunAdmin(LogAdminBase):
    list_display = ("time", "job", "type", "status", "items", "duration", "trigger")
    list_filter = (JobFilter, TypeFilter, "status", "created_at")

    @admin.display(description="job")
    def job(self, obj):
        return self.context_value(obj, "cronType")

    @admin.display(description="items")
    def items(self, obj):
        return self.context_value(obj, "itemsProcessed")

    @admin.display(description="duration")
    def duration(self, obj):
        milliseconds = as_number(row_context(obj).get("duration"))
        if milliseconds is None:
            return self.context_value(obj, "duration")
        return f"{milliseconds / 1000:.2f}s"

    @admin.display(description="trigger")
    def trigger(self, obj):
        return self.context_value(obj, "trigger")


@admin.register(EmailLog)
class EmailLogAdmin(LogAdminBase):
    list_display = ("time", "email_type", "recipient", "booking_link", "status", "short_error")
    list_filter = (TypeFilter, "status", "created_at")

    @admin.display(description="email type")
    def email_type(self, obj):
        return self.context_value(obj, "emailType")

    @admin.display(description="recipient")
    def recipient(self, obj):
        return self.context_value(obj, "recipientEmail")


@admin.register(DailyRoomLog)
class DailyRoomLogAdmin(LogAdminBase):
    list_display = ("time", "room", "booking_link", "status", "short_error")
    list_filter = (TypeFilter, "status", "created_at")

    @admin.display(description="room")
    def room(self, obj):
        return self.context_value(obj, "roomId")


admin.site.register(CronJob, JobsPageAdmin)
