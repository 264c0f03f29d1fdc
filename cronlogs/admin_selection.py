"""Admin actions refuse a selection that names no row, instead of answering 500.

The changelist's action form posts the ids of the ticked rows (`_selected_action`);
Django filters on them as they come, so a hand-built POST with `abc` or `1.5` there ends
in a ValueError, a 500 and an email to ADMINS. Every ModelAdmin of the project mixes this
in (tests/test_admin_hostile_input.py checks each one registered).
"""

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect


class ValidSelectionMixin:
    def response_action(self, request, queryset):
        primary_key = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                primary_key.to_python(value)
        except ValidationError:
            self.message_user(
                request,
                "The selection names rows that do not exist: tick the rows again.",
                messages.WARNING,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)
