"""What happens to a payout: one pure decision, shared by the real runs and the dry runs.

`decide_payout` and `decide_automatic_payout` look only at their arguments — the payout or
creator, the connected account and its available balance as Stripe reported them — and
return a `Decision`: pay (how much), skip (stays as it is, with a reason) or fail (with a
reason). The jobs act on it; their dry runs report it. Neither re-implements the rules.

A dry run without STRIPE_SECRET_KEY passes `account=None, balance=None`: the decision is
then made on our own data alone, and says so (`checked_with_stripe` is False).
"""

from dataclasses import dataclass
from enum import StrEnum

from payouts.money import (
    currency_problem,
    format_amount,
    payable_amount,
    payout_terms_problem,
    to_minor_units,
)


class Action(StrEnum):
    PAY = "pay"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    minor_units: int | None = None  # What to pay, in the currency's minor units.
    checked_with_stripe: bool = True

    @property
    def pays(self):
        return self.action == Action.PAY


def creator_problem(creator):
    """Why `creator` cannot be paid, from our own data alone, or ""."""
    if creator.is_payout_blocked:
        detail = f": {creator.payout_block_reason}" if creator.payout_block_reason else ""
        return f"Creator payouts are blocked{detail}"
    if not (creator.is_stripe_onboarded and creator.stripe_account_id):
        return "Creator has no onboarded Stripe account"
    return ""


NOT_ENABLED = "Stripe reports payouts are not enabled for this account"


def decide_payout(payout, *, account, balance):
    """Pay, skip or fail one APPROVED payout.

    `account` is the creator's `stripe_client.Account` and `balance` the available balance
    by currency in minor units ({"EUR": 12345}); the caller subtracts what earlier payouts
    of the same run took. Either may be None when Stripe was not asked.
    """
    problem = creator_problem(payout.creator)
    if problem:
        return Decision(Action.SKIP, problem)
    # Rows written straight through the ORM (imports, fixtures) skip the forms' checks.
    problem = payout_terms_problem(payout.amount, payout.currency)
    if problem:
        return Decision(Action.FAIL, problem)
    minor = to_minor_units(payout.amount, payout.currency)
    if account is None:
        return Decision(Action.PAY, minor_units=minor, checked_with_stripe=False)
    if not account.payouts_enabled:
        return Decision(Action.SKIP, NOT_ENABLED)
    if balance is None:
        return Decision(Action.PAY, minor_units=minor, checked_with_stripe=False)
    if balance.get(payout.currency.upper(), 0) < minor:
        return Decision(Action.FAIL, "Insufficient balance")
    return Decision(Action.PAY, minor_units=minor)


def decide_automatic_payout(creator, *, account, balance):
    """Pay a due creator's whole available balance in their currency, skip them, or fail
    them when their currency is not one Stripe pays out in."""
    problem = creator_problem(creator)
    if problem:
        return Decision(Action.SKIP, problem)
    problem = currency_problem(creator.currency)
    if problem:
        return Decision(Action.FAIL, f"Creator's currency: {problem}")
    if account is None:
        return Decision(Action.PAY, checked_with_stripe=False)
    if not account.payouts_enabled:
        return Decision(Action.SKIP, NOT_ENABLED)
    if balance is None:
        return Decision(Action.PAY, checked_with_stripe=False)
    currency = creator.currency.upper()
    available = balance.get(currency, 0)
    amount = payable_amount(available, currency) if available > 0 else None
    if not amount or amount <= 0:
        return Decision(Action.SKIP, f"No available balance in {currency}")
    if amount < creator.payout_minimum:
        return Decision(
            Action.SKIP,
            f"Available balance {format_amount(amount)} {currency} is below the payout "
            f"minimum {format_amount(creator.payout_minimum)} {currency}",
        )
    return Decision(Action.PAY, minor_units=to_minor_units(amount, currency))
