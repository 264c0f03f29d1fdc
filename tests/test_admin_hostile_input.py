"""No admin page answers 500 to any query string: odd characters, NUL bytes, huge or
negative page numbers, unknown filters and values, malformed dates and orderings."""

from urllib.parse import quote_from_bytes, unquote, urlencode

import pytest
from django.contrib import admin
from django.core import mail
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronlogs import logger
from cronlogs.admin_selection import ValidSelectionMixin
from cronlogs.models import Log
from tests.conftest import admin_answer

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "/admin/cronlogs/log/",
    "/admin/cronlogs/cronrun/",
    "/admin/cronlogs/emaillog/",
    "/admin/cronlogs/dailyroomlog/",
    "/admin/cronlogs/cronjob/",
    "/admin/bookings/booking/",
    "/admin/bookings/creator/",
    "/admin/bookings/user/",
    "/admin/payouts/payout/",
]
FORM_PAGES = [
    "/admin/cronlogs/log/{run}/change/",
    "/admin/cronlogs/cronrun/{run}/change/",
    "/admin/cronlogs/emaillog/{email}/change/",
    "/admin/cronlogs/dailyroomlog/{room}/change/",
    "/admin/bookings/booking/{booking}/change/",
    "/admin/bookings/creator/{creator}/change/",
    "/admin/bookings/user/{user}/change/",
    "/admin/payouts/payout/{payout}/change/",
    "/admin/bookings/booking/add/",
    "/admin/bookings/creator/add/",
    "/admin/bookings/user/add/",
    "/admin/payouts/payout/add/",
    # Ids that name no row: the admin says so on the changelist.
    "/admin/cronlogs/log/abc/change/",
    "/admin/cronlogs/log/99999999999999999999/change/",
    "/admin/bookings/booking/%C2%B2/change/",
]

# Each is sent as it is written here, already URL-encoded.
HOSTILE_QUERIES = [
    # Search: digits that are not ASCII, NUL, emoji, invalid UTF-8, a LIKE wildcard, length.
    "q=%C2%B2",
    "q=%23%C2%B2",
    "q=%D9%A1%D9%A2",
    "q=%00",
    "q=%F0%9F%92%A5%20%E2%80%AE",
    "q=%FF%FE",
    "q=%25",
    "q=%27%20OR%201%3D1%20--",
    "q=99999999999999999999",
    "q=" + "x" * 10_000,
    "q=" + "%C3%A9" * 2_000,
    # Pages: huge, negative, zero, not a number.
    "p=999999999999999999",
    "p=99999999999999999999999999",
    "p=-1",
    "p=0",
    "p=abc",
    "p=%C2%B2",
    "p=1_0",
    # Ordering.
    "o=garbage",
    "o=999",
    "o=-1.-2",
    "o=%00",
    # Filters: unknown values, NUL, malformed dates and booleans, ids out of range.
    "job=nope",
    "job=%00",
    "type=NOPE",
    "type=%00",
    "status__exact=NOPE",
    "status__exact=%00",
    "level__exact=%00",
    "currency__exact=%00",
    "payout_schedule__exact=%00",
    "created_at__gte=not-a-date",
    "created_at__lt=2024-13-45",
    "created_at__gte=99999-01-01",
    "created_at__gte=%00",
    "starts_at__gte=not-a-date",
    "requested_at__lt=yesterday",
    "reminder_sent__exact=maybe",
    "flagged_at__isnull=maybe",
    "id__exact=99999999999999999999",
    "id=abc",
    "pk__in=1,abc",
    "creator__id__exact=-99999999999999999999",
    "%00=1",
    # Parameters no page knows, and the admin's own flags.
    "foo=bar",
    "e=1",
    "all=",
    "_popup=1",
    "_to_field=nope",
    "_changelist_filters=%00",
    "_changelist_filters=status__exact%3DNOPE",
]

# A change or add page reads fewer parameters: the changelist filters it returns to, the
# popup flags, and (add pages) initial values for the form's fields.
FORM_PAGE_QUERIES = [
    "q=%C2%B2",
    "q=%00",
    "p=99999999999999999999999999",
    "foo=bar",
    "_popup=1",
    "_to_field=nope",
    "_changelist_filters=%00",
    "_changelist_filters=p%3D-1%26q%3D%25C2%25B2",
    "status=NOPE",
    "starts_at=not-a-date",
    "starts_at=2024-13-45T25:00",
    "creator=abc",
    "creator=99999999999999999999",
    "client=%C2%B2",
    "amount=abc",
    "timezone=Mars%2FOlympus",
    "groups=abc",
    "user_permissions=-1",
]


@pytest.fixture
def page_ids(make_booking, make_payout):
    """One row of every kind, for the change pages."""
    booking = make_booking(daily_room_name="room-1")
    return {
        "run": logger.log_cron_run("cleanup-logs", 3, 1200, {"trigger": "cron"}).pk,
        "email": logger.log_email_sent(booking.pk, booking.client_id, "booking_reminder_client").pk,
        "room": logger.log_daily_room_deleted("room-1", booking.pk).pk,
        "booking": booking.pk,
        "creator": booking.creator_id,
        "user": booking.client_id,
        "payout": make_payout(creator=booking.creator).pk,
    }


@pytest.mark.parametrize(
    "page, queries",
    [(page, HOSTILE_QUERIES) for page in CHANGELISTS]
    + [(page, FORM_PAGE_QUERIES) for page in FORM_PAGES],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_never_answers_a_server_error_to_a_hostile_query_string(
    staff_client, page_ids, page, queries
):
    url = page.format(**page_ids)

    answers = {query[:60]: admin_answer(staff_client, f"{url}?{query}") for query in queries}

    # It should answer each with a page, or a 400 for a URL no page can serve.
    assert {query: status for query, status in answers.items() if status not in (200, 400)} == {}


def test_it_refuses_a_nul_byte_anywhere_in_the_url_with_a_400(staff_client, page_ids, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    for url in [
        "/admin/cronlogs/log/?status__exact=%00",
        "/admin/cronlogs/cronjob/?job=%00",
        "/admin/bookings/booking/?q=a%00b",
        "/admin/payouts/payout/?%00=1",
        "/admin/cronlogs/log/%00/change/",
        "/api/cron/health?x=%00",
    ]:
        response = staff_client.get(url)
        # It should refuse it before any view runs.
        assert response.status_code == 400, url
        assert response.content == b"NUL bytes are not allowed in a URL."

    # It should email nobody: a 400 is an answer, not a failure of the server.
    assert mail.outbox == []
    # It should still serve an escaped "%00" (a percent sign, then two zeros).
    assert staff_client.get("/admin/cronlogs/log/?q=%2500").status_code == 200


def test_it_searches_non_ascii_digits_as_text(staff_client, page_ids):
    for url in ["/admin/cronlogs/log/", "/admin/bookings/booking/"]:
        response = staff_client.get(url, {"q": "²"})
        # It should treat "²" as text to look for, not as a booking number.
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == []


def test_it_answers_a_page_past_the_end_as_any_bad_lookup(staff_client):
    Log.objects.bulk_create(
        Log(type=Log.Type.CRON_RUN, status=Log.Status.SUCCESS, message=f"run {n}")
        for n in range(51)
    )

    for page in ["999999999999999999", "99999999999999999999999999", "0", "-1"]:
        response = staff_client.get("/admin/cronlogs/cronrun/", {"p": page}, follow=True)
        # It should redirect to the changelist's "invalid lookup" flag, not fail counting.
        assert response.redirect_chain == [("/admin/cronlogs/cronrun/?e=1", 302)], page
        assert response.status_code == 200
    # It should still serve the last real page.
    assert (
        len(staff_client.get("/admin/cronlogs/cronrun/", {"p": 2}).context["cl"].result_list) == 1
    )


def test_it_prefills_a_booking_start_only_from_a_real_date(staff_client):
    # It should prefill the add form from a real date and time ...
    page = staff_client.get("/admin/bookings/booking/add/", {"starts_at": "2030-01-02T10:30"})
    assert 'value="2030-01-02"' in page.content.decode()
    assert 'value="10:30:00"' in page.content.decode()
    # ... and leave the field empty for anything else.
    for text in ["not-a-date", "2024-13-45T25:00", "²"]:
        page = staff_client.get("/admin/bookings/booking/add/", {"starts_at": text})
        assert page.status_code == 200
        assert text not in page.content.decode()


# Parameters the changelists read, so that generated values reach search, paging, ordering,
# every filter and the admin's own flags.
PAGE_PARAMETERS = ["q", "p", "o"]
FILTER_PARAMETERS = [
    "job",
    "type",
    "status__exact",
    "level__exact",
    "created_at__gte",
    "created_at__lt",
    "starts_at__gte",
    "reminder_sent__exact",
    "requested_at__lt",
    "flagged_at__isnull",
    "payout_schedule__exact",
    "currency__exact",
    "creator__id__exact",
    "e",
    "all",
    "_popup",
    "_to_field",
]
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
values = st.one_of(
    # The values of the table above, anywhere, and with others.
    st.sampled_from([query.partition("=")[2] for query in HOSTILE_QUERIES]).map(unquote),
    any_text,
    # Digits of other scripts, superscripts, circled numbers: some are isdigit() but no int.
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),
    st.integers().map(str),
)
query_strings = st.one_of(
    # Entries of the table above, combined with each other and with generated pairs.
    st.lists(
        st.one_of(
            st.sampled_from(HOSTILE_QUERIES),
            st.tuples(st.sampled_from(PAGE_PARAMETERS + FILTER_PARAMETERS), values),
            st.tuples(any_text, values),
        ).map(lambda pair: pair if isinstance(pair, str) else urlencode([pair])),
        min_size=1,
        max_size=2,
    ).map("&".join),
    # Bytes that need not be UTF-8, percent-encoded as a browser would send them.
    st.tuples(st.sampled_from(PAGE_PARAMETERS + FILTER_PARAMETERS), st.binary(max_size=20)).map(
        lambda pair: f"{pair[0]}={quote_from_bytes(pair[1])}"
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(page=st.sampled_from(CHANGELISTS), query=query_strings)
def test_it_answers_any_query_string_with_a_page_or_a_400(staff_client, page, query):
    url = f"{page}?{query}"

    # A savepoint per example: a database error must not poison the next examples.
    with transaction.atomic():
        response = staff_client.get(url, follow=True)

    # It should answer with a page, or a 400 for a URL no page can serve.
    assert response.status_code in (200, 400), url
    if response.status_code == 200:
        assert b"</html>" in response.content


def test_it_emails_nobody_for_a_suspicious_request(staff_client, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]

    response = staff_client.get("/admin/cronlogs/log/?_to_field=nope")

    # It should answer 400 and log it, not mail ADMINS for each one a caller sends.
    assert response.status_code == 400
    assert mail.outbox == []


HOSTILE_SELECTIONS = ["abc", "1.5", "-1.0", "²", "\x00", "1e3", ""]


def test_every_admin_refuses_a_selection_that_names_no_row():
    # It should mix the selection check into every page the admin serves.
    assert [
        type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if not isinstance(model_admin, ValidSelectionMixin)
    ] == []


def test_it_answers_an_action_on_a_hostile_selection_with_a_message(
    admin_client, page_ids, settings
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    before = Log.objects.count()
    answers, tried = {}, set()
    for model, model_admin in admin.site._registry.items():
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        request = admin_client.get(url).wsgi_request
        for action in model_admin.get_actions(request):
            tried.add(action)
            for selection in HOSTILE_SELECTIONS:
                data = {"action": action, "_selected_action": [selection], "index": "0"}
                try:
                    with transaction.atomic():
                        response = admin_client.post(url, data, follow=True)
                except Exception as exc:  # Reported by the assertion below.
                    answers[(url, action, selection)] = f"{type(exc).__name__}: {exc}"
                    continue
                if response.status_code != 200 or b"tick the rows again" not in response.content:
                    answers[(url, action, selection)] = response.status_code
    # It should answer each with the changelist, saying why nothing was done.
    assert {"delete_selected", "approve_payouts", "pay_approved_now", "send_reminder_now"} <= tried
    assert len(answers) == 0, answers

    # It should have changed nothing and emailed nobody.
    assert before == Log.objects.count()
    assert mail.outbox == []
