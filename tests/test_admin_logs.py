"""The read-only log pages of the admin: columns, filters, search, JSON, permissions, cost."""

import re
from html import unescape

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from cronlogs import logger
from cronlogs.models import Log

pytestmark = pytest.mark.django_db

LOG_PAGES = ["log", "cronrun", "emaillog", "dailyroomlog"]


@pytest.fixture
def log_viewer(make_staff):
    """Staff who may read logs (the "Can view log" permission) and nothing more."""
    return make_staff("cronlogs.view_log")


@pytest.fixture
def rows(make_booking):
    booking, other = make_booking(), make_booking()
    return {
        "run": logger.log_cron_run(
            "send-booking-reminders", 2, 1234, {"trigger": "cron", "emailsSent": 2}
        ),
        "error": logger.log_cron_error("process-payouts", RuntimeError("Stripe down")),
        "skipped": logger.log_cron_skipped("cleanup-logs", "already running"),
        "email": logger.log_email_sent(
            booking.pk,
            booking.client_id,
            "booking_reminder_client",
            {"recipientEmail": "fan@example.com"},
        ),
        "email_error": logger.log_email_error(
            other.pk,
            other.client_id,
            "booking_reminder_creator",
            "550 No such user",
            {"recipientEmail": "gone@example.com"},
        ),
        "room": logger.log_daily_room_deleted("room-abc", booking.pk, {"deletedBy": "cron_job"}),
        "room_error": logger.log_daily_room_error("room-xyz", other.pk, "Daily 500"),
        "booking": booking,
        "other": other,
    }


def changelist(model):
    return f"/admin/cronlogs/{model}/"


def shown_ids(response):
    return sorted(row.pk for row in response.context["cl"].result_list)


def filter_links(html):
    """Every filter choice link on a changelist page."""
    sidebar = html.split('id="changelist-filter"', 1)[1]
    return sorted({unescape(href) for href in re.findall(r'href="(\?[^"]*)"', sidebar)})


def test_it_shows_each_kind_of_row_on_its_own_page(client, log_viewer, rows):
    client.force_login(log_viewer)

    # It should split the rows by kind, with the columns that fit each.
    expected = {
        "cronrun": {rows["run"].pk, rows["error"].pk, rows["skipped"].pk},
        "emaillog": {rows["email"].pk, rows["email_error"].pk},
        "dailyroomlog": {rows["room"].pk, rows["room_error"].pk},
    }
    for model, ids in expected.items():
        response = client.get(changelist(model))
        assert response.status_code == 200
        assert set(shown_ids(response)) == ids
    assert len(shown_ids(client.get(changelist("log")))) == 7

    runs = client.get(changelist("cronrun")).content.decode()
    assert "send-booking-reminders" in runs and "1.23s" in runs and ">cron<" in runs
    emails = client.get(changelist("emaillog")).content.decode()
    assert "fan@example.com" in emails and "booking_reminder_creator" in emails
    assert f'href="/admin/bookings/booking/{rows["booking"].pk}/change/"' in emails
    rooms = client.get(changelist("dailyroomlog")).content.decode()
    assert "room-abc" in rooms and "Daily 500" in rooms


def test_it_renders_every_filter_of_every_page(client, log_viewer, rows):
    client.force_login(log_viewer)

    for model in LOG_PAGES:
        links = filter_links(client.get(changelist(model)).content.decode())
        # It should offer filters by job (where it fits), type, status and date.
        assert any("status__exact=ERROR" in link for link in links)
        assert any("created_at__gte=" in link for link in links)
        if model in ("log", "cronrun"):
            assert "?job=process-payouts" in links
        for link in links:
            response = client.get(changelist(model) + link)
            assert response.status_code == 200, (model, link)


def test_it_filters_by_job_type_status_and_level(client, log_viewer, rows):
    client.force_login(log_viewer)

    by_job = client.get(changelist("cronrun") + "?job=process-payouts")
    assert shown_ids(by_job) == [rows["error"].pk]
    by_type = client.get(changelist("log") + "?type=CRON_SKIPPED")
    assert shown_ids(by_type) == [rows["skipped"].pk]
    by_status = client.get(changelist("emaillog") + "?status__exact=ERROR")
    assert shown_ids(by_status) == [rows["email_error"].pk]
    by_level = client.get(changelist("log") + "?level__exact=WARNING")
    assert shown_ids(by_level) == [rows["skipped"].pk]


def test_it_searches_by_booking_id_and_by_message(client, log_viewer, rows):
    client.force_login(log_viewer)
    other = rows["other"].pk

    # A number finds that booking's rows (and the log row with that id, if any).
    response = client.get(changelist("log"), {"q": str(other)})
    found = set(shown_ids(response))
    assert {rows["email_error"].pk, rows["room_error"].pk} <= found
    assert found - {rows["email_error"].pk, rows["room_error"].pk} <= {other}
    assert rows["email"].pk not in found or rows["email"].pk == other
    assert shown_ids(client.get(changelist("emaillog"), {"q": f"#{other}"})) == [
        rows["email_error"].pk
    ]

    # Any other text is looked for in the messages, case-insensitively.
    assert shown_ids(client.get(changelist("log"), {"q": "stripe DOWN"})) == [rows["error"].pk]


def test_it_shows_the_context_as_indented_json(client, log_viewer, rows):
    client.force_login(log_viewer)

    response = client.get(f"/admin/cronlogs/cronrun/{rows['run'].pk}/change/")

    assert response.status_code == 200
    page = unescape(response.content.decode())
    assert '<pre class="log-json">{\n  "cronType": "send-booking-reminders",' in page
    assert '\n  "emailsSent": 2,' in page
    error_page = unescape(
        client.get(f"/admin/cronlogs/log/{rows['error'].pk}/change/").content.decode()
    )
    assert "RuntimeError: Stripe down" in error_page


def test_it_keeps_logs_read_only_and_deletable_by_superusers_only(
    client, log_viewer, rows, admin_user
):
    client.force_login(log_viewer)
    row = rows["run"]

    # It should refuse adding, changing and deleting to staff.
    assert client.get("/admin/cronlogs/log/add/").status_code == 403
    response = client.post(f"/admin/cronlogs/log/{row.pk}/change/", {"message": "edited"})
    assert response.status_code == 403
    assert client.post(f"/admin/cronlogs/log/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.message.startswith("Cron job completed")

    # A superuser still cannot edit, but may delete.
    client.force_login(admin_user)
    assert client.get("/admin/cronlogs/log/add/").status_code == 403
    assert b'name="_save"' not in client.get(f"/admin/cronlogs/log/{row.pk}/change/").content
    client.post(f"/admin/cronlogs/log/{row.pk}/delete/", {"post": "yes"})
    assert not Log.objects.filter(pk=row.pk).exists()


def test_it_hides_logs_from_staff_without_the_permission(client, make_user, rows):
    client.force_login(make_user(is_staff=True))

    for model in LOG_PAGES:
        assert client.get(changelist(model)).status_code == 403


def test_it_never_counts_the_whole_table(client, log_viewer, rows, settings):
    client.force_login(log_viewer)

    for url in [changelist(model) for model in LOG_PAGES] + [
        changelist("log") + "?job=cleanup-logs&status__exact=SUCCESS",
        changelist("log") + "?q=stripe",
    ]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        # It should count at most 20 pages of rows, never a bare COUNT(*) of "Log".
        assert counts, url
        for sql in counts:
            assert "LIMIT 1001" in sql, sql


@pytest.mark.postgres_only
def test_it_answers_every_filter_from_an_index(client, log_viewer, rows):
    client.force_login(log_viewer)
    urls = [
        changelist("log"),
        changelist("cronrun") + "?job=send-booking-reminders",
        changelist("log") + "?type=EMAIL_SENT",
        changelist("log") + "?status__exact=ERROR",
        changelist("log") + "?level__exact=WARNING",
        # The date filter sends aware datetimes, as its "Past 7 days" links do.
        changelist("log") + "?created_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00",
        changelist("emaillog") + f"?q={rows['booking'].pk}",
    ]
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        log_queries = [q["sql"] for q in queries if 'FROM "Log"' in q["sql"]]
        assert log_queries, url
        for sql in log_queries:
            # With sequential scans priced out, a plan without an index scan would still
            # show one; every plan must reach "Log" through an index instead.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute(f"EXPLAIN {sql}")
                plan = "\n".join(line for (line,) in cursor.fetchall())
            assert 'Seq Scan on "Log"' not in plan, (url, plan)
