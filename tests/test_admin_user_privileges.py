"""Staff cannot raise privileges: only superusers see or change staff and superuser status,
groups and permissions, and other staff accounts are out of a non-superuser's reach."""

import pytest
from django.contrib.auth.models import Group, Permission

from bookings.models import User

pytestmark = pytest.mark.django_db
USERS = "/admin/bookings/user/"


@pytest.fixture
def user_manager(client, make_staff):
    """A staff user holding only bookings.change_user (and view), signed in."""
    user = make_staff("bookings.change_user", "bookings.view_user")
    client.force_login(user)
    return user


def form_data(user, **extra):
    return {
        "email": user.email,
        "name": user.name,
        "timezone": user.timezone,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "_save": "Save",
        **extra,
    }


ESCALATION = {
    "is_superuser": "on",
    "is_staff": "on",
    "user_permissions": [],
    "groups": [],
}


def test_a_change_user_only_staff_member_cannot_make_anyone_superuser_or_staff(
    client, user_manager, make_user
):
    fan = make_user(name="A Fan")
    admins = Group.objects.create(name="Admins")
    admins.permissions.add(Permission.objects.get(codename="run_cron_jobs"))
    permission = Permission.objects.get(codename="delete_booking")
    escalate = {**ESCALATION, "groups": [admins.pk], "user_permissions": [permission.pk]}

    # Not on the form: neither on their own account nor on a fan's.
    for target in (user_manager, fan):
        page = client.get(f"{USERS}{target.pk}/change/").content
        for field in ("is_superuser", "is_staff", "groups", "user_permissions"):
            assert f'name="{field}"'.encode() not in page, field
        # Posted anyway: saved without them.
        response = client.post(f"{USERS}{target.pk}/change/", form_data(target, **escalate))
        assert response.status_code == 302

    # It should have granted nothing to anyone.
    for target in (user_manager, fan):
        target.refresh_from_db()
        assert not target.is_superuser
        assert target.groups.count() == 0 and target.user_permissions.count() == (
            2 if target == user_manager else 0
        )
    assert not User.objects.get(pk=fan.pk).is_staff
    assert User.objects.get(pk=user_manager.pk).is_staff  # as it was


def test_it_keeps_other_staff_and_superuser_accounts_out_of_reach(
    client, user_manager, make_user, admin_user
):
    colleague = make_user(is_staff=True)

    for target in (colleague, admin_user):
        # It should show them read-only and refuse a POST, or a new password.
        page = client.get(f"{USERS}{target.pk}/change/")
        assert page.status_code == 200 and b'name="email"' not in page.content
        assert client.post(f"{USERS}{target.pk}/change/", form_data(target)).status_code == 403
        password = {"password1": "Another-pass-123", "password2": "Another-pass-123"}
        assert client.post(f"{USERS}{target.pk}/password/", password).status_code == 403
        assert client.post(f"{USERS}{target.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.check_password("password")


def test_it_hides_privilege_columns_and_filters_from_non_superusers(client, user_manager):
    page = client.get(USERS).content
    assert b"is_superuser__exact" not in page and b"is_staff__exact" not in page


def test_a_superuser_still_grants_privileges(admin_client, make_user):
    fan = make_user()

    page = admin_client.get(f"{USERS}{fan.pk}/change/").content
    assert b'name="is_superuser"' in page and b'name="user_permissions"' in page
    response = admin_client.post(
        f"{USERS}{fan.pk}/change/", form_data(fan, is_staff="on", groups=[], user_permissions=[])
    )

    assert response.status_code == 302
    assert User.objects.get(pk=fan.pk).is_staff


def test_its_save_refuses_a_privilege_change_even_from_a_hand_built_form(
    rf, user_manager, make_user
):
    from django.contrib.admin.sites import site
    from django.core.exceptions import PermissionDenied

    request = rf.post("/")
    request.user = user_manager
    model_admin = site._registry[User]
    fan = make_user()
    fan.is_superuser = True

    with pytest.raises(PermissionDenied, match="Only superusers"):
        model_admin.save_model(request, fan, form=None, change=True)
    assert not User.objects.get(pk=fan.pk).is_superuser


def test_a_group_manager_cannot_grant_their_own_group_the_right_to_pay(client, make_staff):
    approvers = Group.objects.create(name="Approvers")
    manager = make_staff(
        "auth.view_group", "auth.add_group", "auth.change_group", "auth.delete_group"
    )
    manager.groups.add(approvers)
    client.force_login(manager)
    pay = Permission.objects.get(content_type__app_label="payouts", codename="pay_payout")

    # It should show the group read-only and refuse a hand-built POST adding the permission.
    page = client.get(f"/admin/auth/group/{approvers.pk}/change/")
    assert page.status_code == 200 and b'name="permissions"' not in page.content
    response = client.post(
        f"/admin/auth/group/{approvers.pk}/change/",
        {"name": "Approvers", "permissions": [pay.pk], "_save": "Save"},
    )
    assert response.status_code == 403
    assert not approvers.permissions.exists()
    assert not manager.has_perm("payouts.pay_payout")

    # Nor may they make a new group with it, or delete one.
    assert (
        client.post(
            "/admin/auth/group/add/", {"name": "Payers", "permissions": [pay.pk]}
        ).status_code
        == 403
    )
    assert not Group.objects.filter(name="Payers").exists()
    assert (
        client.post(f"/admin/auth/group/{approvers.pk}/delete/", {"post": "yes"}).status_code == 403
    )


def test_a_superuser_still_manages_groups(admin_client):
    pay = Permission.objects.get(content_type__app_label="payouts", codename="pay_payout")
    response = admin_client.post(
        "/admin/auth/group/add/", {"name": "Payers", "permissions": [pay.pk], "_save": "Save"}
    )
    assert response.status_code == 302
    assert list(Group.objects.get(name="Payers").permissions.all()) == [pay]
