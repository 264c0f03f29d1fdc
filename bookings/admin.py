"""Admin for people, creators and bookings, with the booking actions staff need by hand.

The actions do part of a job's work through the shared runner (`run_as_staff`): under the
job's lock, with a run row naming who asked, and with the same services as the jobs
(`bookings.reminders`, `bookings.room_cleanup`), so the same rules and log rows apply.
"""

from functools import partial

from django.contrib import admin, messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from bookings.models import Booking, Creator, User
from bookings.reminders import remind_bookings_now
from bookings.room_cleanup import delete_booking_rooms
from cronlogs.admin_jobs import run_as_staff, run_message
from cronlogs.runner import RunStatus


class UserCreationForm(auth_forms.AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name", "timezone")


class UserChangeForm(auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "name", "timezone", "is_staff", "is_active")
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "timezone")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "name",
                    "timezone",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )


@admin.register(Creator)
class CreatorAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "currency",
        "payout_schedule",
        "payout_minimum",
        "is_stripe_onboarded",
        "is_payout_blocked",
    )
    list_filter = ("payout_schedule", "is_stripe_onboarded", "is_payout_blocked", "currency")
    list_select_related = ("user",)
    search_fields = ("user__email", "user__name", "stripe_account_id")
    raw_id_fields = ("user",)


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    # Daily room URLs are https; also Django 6's default for scheme-less input.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = (
        "__str__",
        "starts_at",
        "status",
        "client",
        "creator",
        "total_price",
        "currency",
        "reminder_sent",
        "daily_room_name",
    )
    list_filter = ("status", "reminder_sent", "starts_at")
    list_select_related = ("client", "creator__user")
    search_fields = ("client__email", "creator__user__email", "daily_room_name")
    search_help_text = "A booking number, an email address or a Daily room name."
    raw_id_fields = ("client", "creator")
    readonly_fields = ("created_at", "updated_at")
    ordering = ("-starts_at",)
    show_full_result_count = False
    actions = ["send_reminder_now", "delete_daily_room"]

    def get_changeform_initial_data(self, request):
        # `?starts_at=` prefills the add form, but Django hands the raw text to the split
        # date/time widget, which needs a datetime and fails on any text: parse it or drop it.
        initial = super().get_changeform_initial_data(request)
        if "starts_at" in initial:
            try:
                starts_at = parse_datetime(initial.pop("starts_at"))
            except ValueError:
                starts_at = None
            if starts_at is not None:
                initial["starts_at"] = starts_at
        return initial

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        # Only ASCII digits are a booking number: "²".isdigit() is true, yet int("²") fails.
        if term.isascii() and term.isdigit() and len(term) < 19:
            queryset |= self.model.objects.filter(Q(pk=int(term)))
        return queryset, may_have_duplicates

    @admin.action(description="Send the reminder emails now", permissions=["change"])
    def send_reminder_now(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        task = partial(remind_bookings_now, booking_ids=ids)
        result = run_as_staff(request, "send-booking-reminders", task=task)
        if result.status == RunStatus.SKIPPED:
            self.message_user(request, run_message(result), messages.WARNING)
            return
        stats = result.stats
        parts = [f"{stats.get('emailsSent', 0)} email(s) sent"]
        for key, label in (
            ("emailsFailed", "failed"),
            ("alreadySent", "already sent before"),
            ("emailsDeferred", "deferred to the next run"),
        ):
            if stats.get(key):
                parts.append(f"{stats[key]} {label}")
        if stats.get("skipped"):
            parts.append(
                f"{stats['skipped']} booking(s) skipped (not confirmed or already started)"
            )
        text = f"Reminders: {', '.join(parts)}."
        if stats.get("error"):
            text += f" {stats['error']}"
        if result.error:
            text += f" {result.error}"
        failed = result.failed or stats.get("error") or stats.get("emailsFailed")
        self.message_user(request, text, messages.ERROR if failed else messages.SUCCESS)

    @admin.action(description="Delete the Daily room", permissions=["change"])
    def delete_daily_room(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        task = partial(delete_booking_rooms, booking_ids=ids, deleted_by="admin")
        result = run_as_staff(request, "cleanup-daily-rooms", task=task)
        if result.status == RunStatus.SKIPPED or (result.failed and not result.stats):
            self.message_user(request, run_message(result), messages.ERROR)
            return
        stats = result.stats
        summary = (
            f"Daily rooms: {stats.get('roomsDeleted', 0)} deleted, "
            f"{stats.get('roomsAlreadyDeleted', 0)} already gone on Daily, "
            f"{stats.get('withoutRoom', 0)} without a room"
        )
        if stats.get("roomsFailed") or result.failed:
            error = f": {result.error}" if result.error else " (see Daily room logs)"
            self.message_user(
                request, f"{summary}, {stats.get('roomsFailed', 0)} failed{error}", messages.ERROR
            )
        else:
            self.message_user(request, f"{summary}.", messages.SUCCESS)
