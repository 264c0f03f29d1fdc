"""Admin for people, creators and bookings, with the booking actions staff need by hand.

The actions go through the same services as the jobs (`bookings.reminders`,
`bookings.room_cleanup`), so the same rules apply and the same log rows are written.
"""

from collections import Counter

from django.contrib import admin, messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import Q

from bookings.daily import DailyError
from bookings.models import Booking, Creator, User
from bookings.reminders import send_reminders_for_bookings
from bookings.room_cleanup import delete_booking_room


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

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        if term.isdigit() and len(term) < 19:
            queryset |= self.model.objects.filter(Q(pk=int(term)))
        return queryset, may_have_duplicates

    @admin.action(description="Send the reminder emails now", permissions=["change"])
    def send_reminder_now(self, request, queryset):
        stats = send_reminders_for_bookings(list(queryset))
        parts = [f"{stats['emailsSent']} email(s) sent"]
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
        level = (
            messages.ERROR if stats.get("error") or stats.get("emailsFailed") else messages.SUCCESS
        )
        text = f"Reminders: {', '.join(parts)}."
        if stats.get("error"):
            text += f" {stats['error']}"
        self.message_user(request, text, level)

    @admin.action(description="Delete the Daily room", permissions=["change"])
    def delete_daily_room(self, request, queryset):
        outcomes = Counter()
        failures = []
        for booking in queryset.filter(daily_room_name__isnull=False).exclude(daily_room_name=""):
            try:
                outcomes[delete_booking_room(booking, deleted_by="admin")] += 1
            except ImproperlyConfigured as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return
            except DailyError as exc:
                failures.append(f"{booking}: {exc}")
        without_room = queryset.count() - sum(outcomes.values()) - len(failures)
        summary = (
            f"Daily rooms: {outcomes['deleted']} deleted, "
            f"{outcomes['already_gone']} already gone on Daily, {without_room} without a room"
        )
        if failures:
            self.message_user(
                request,
                f"{summary}, {len(failures)} failed (see Daily room logs): {'; '.join(failures)}",
                messages.ERROR,
            )
        else:
            self.message_user(request, f"{summary}.", messages.SUCCESS)
