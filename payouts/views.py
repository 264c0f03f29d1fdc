"""`POST /api/stripe/webhook`: Stripe's payout events for connected accounts.

Answers are JSON: 200 once an event is handled, replayed or ignored (Stripe stops
redelivering), 400 for a missing or wrong signature or a stale timestamp (nothing
changes), 503 while STRIPE_WEBHOOK_SECRET is not set, 500 if the database failed (Stripe
redelivers later).
"""

import logging

from django.db import DatabaseError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from cronlogs.views import answer
from payouts import stripe_client
from payouts.webhooks import handle_stripe_event

logger = logging.getLogger(__name__)


@csrf_exempt
def stripe_webhook(request):
    if request.method != "POST":
        response = answer(
            {"error": "method_not_allowed", "message": f"{request.method} is not served here."},
            405,
        )
        response["Allow"] = "POST"
        return response
    if not stripe_client.webhook_is_configured():
        return answer(
            {"error": "not_configured", "message": "STRIPE_WEBHOOK_SECRET is not set."}, 503
        )
    try:
        event = stripe_client.parse_webhook(request.body, request.headers.get("Stripe-Signature"))
    except stripe_client.InvalidWebhook as exc:
        logger.warning("Refused a Stripe webhook: %s", exc)
        return answer({"error": "invalid_webhook", "message": str(exc)}, 400)
    try:
        handled = handle_stripe_event(event, now=timezone.now())
    except DatabaseError:
        logger.exception("Stripe webhook %s: database unavailable", event.id)
        return answer({"error": "database_unavailable", "eventId": event.id}, 500)
    return answer(
        {
            "received": True,
            "eventId": event.id,
            "type": event.type,
            "outcome": handled.outcome,
            "detail": handled.detail,
            "payoutId": handled.payout_id,
        }
    )
