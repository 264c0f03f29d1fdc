"""No admin page answers 500 to any query string: odd characters, NUL bytes, huge or
negative page numbers, unknown filters and values, malformed dates and orderings."""

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db


def test_it_refuses_a_nul_byte_anywhere_in_the_url_with_a_400(staff_client, settings):
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
