"""Admin for people, creators and bookings, with the booking actions staff need by hand.

The actions do part of a job's work through the shared runner (`run_as_staff`): under the
job's lock, with a run row naming who asked, and with the same services as the jobs
(`bookings.reminders`, `bookings.room_cleanup`), so the same rules and log rows apply.
"""

from functools import partial

from django.contrib import admin, messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from bookings.models import Booking, Creator, User
from bookings.reminders import remind_bookings_now
from bookings.room_cleanup import delete_booking_rooms
from cronlogs.admin_jobs import run_as_staff, run_message
from cronlogs.admin_selection import ValidSelectionMixin
from cronlogs.runner import RunStatus


class UserCreationForm(auth_forms.AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name", "timezone")


class UserChangeForm(auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


# Who may grant what: only superusers see or change these, on anyone's account.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


@admin.register(User)
class UserAdmin(ValidSelectionMixin, DjangoUserAdmin):
    """People. Staff holding only "change user" manage fans' and creators' accounts (and
    their own profile); they cannot grant privileges (staff, superuser, groups,
    permissions: not on their form, and refused if posted anyway), nor change another
    staff or superuser account, whose password would let them act as its owner."""

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

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return tuple(
            (name, {**options, "fields": _without_privileges(options["fields"])})
            for name, options in fieldsets
        )

    def get_list_display(self, request):
        fields = super().get_list_display(request)
        return fields if request.user.is_superuser else _without_privileges(fields)

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        return filters if request.user.is_superuser else _without_privileges(filters)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or not _privileged_for(request, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not _privileged_for(request, obj))

    def save_model(self, request, obj, form, change):
        # The form has no privilege fields for them; this refuses a hand-built POST too.
        if not request.user.is_superuser:
            stored = User.objects.filter(pk=obj.pk).first() if change else None
            for name in ("is_staff", "is_superuser"):
                if getattr(obj, name) != (getattr(stored, name) if stored else False):
                    raise PermissionDenied("Only superusers grant staff or superuser status.")
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if not request.user.is_superuser and {"groups", "user_permissions"} & set(
            form.changed_data
        ):
            raise PermissionDenied("Only superusers grant groups or permissions.")
        super().save_related(request, form, formsets, change)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(ValidSelectionMixin, DjangoGroupAdmin):
    """A group's permissions are privileges too: staff holding `auth.change_group` could
    otherwise give their own group the right to pay. Only superusers create, change or
    delete groups; others may at most view them."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


def _without_privileges(fields):
    kept = []
    for field in fields:
        if isinstance(field, (list, tuple)):
            field = type(field)(_without_privileges(field))
            if field:
                kept.append(field)
        elif field not in PRIVILEGE_FIELDS:
            kept.append(field)
    return tuple(kept)


def _privileged_for(request, user):
    """Another staff or superuser account is beyond a non-superuser's reach."""
    if request.user.is_superuser or user.pk == request.user.pk:
        return False
    return user.is_staff or user.is_superuser


@admin.register(Creator)
class CreatorAdmin(ValidSelectionMixin, admin.ModelAdmin):
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
class BookingAdmin(ValidSelectionMixin, admin.ModelAdmin):
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
