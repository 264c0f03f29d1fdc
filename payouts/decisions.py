"""What happens to a payout: one pure decision, shared by the real runs and the dry runs.

`decide_payout` and `decide_automatic_payouts` look only at their arguments — the payout or
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
    from_minor_units,
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


@dataclass(frozen=True)
class CurrencyDecision:
    """What an automatic run does with one currency of a creator's balance."""

    currency: str
    decision: Decision


def decide_automatic_payouts(creator, *, account, balance, reserved=None, minimums=None):
    """Pay out each currency of a due creator's available balance, or say why not.

    The creator's own currency comes first and is held to their `payout_minimum`; each
    other currency to its entry in `minimums` (PAYOUT_MINIMUMS, major units by upper-case
    code). `reserved` (minor units by currency) is what approved and in-flight manual
    payouts of the creator will still draw, so the manual ones are paid, not failed.
    Returns a CurrencyDecision per currency that has something to say.
    """
    own = creator.currency.upper()
    problem = creator_problem(creator)
    if problem:
        return [CurrencyDecision(own, Decision(Action.SKIP, problem))]
    problem = currency_problem(creator.currency)
    if problem:
        return [CurrencyDecision(own, Decision(Action.FAIL, f"Creator's currency: {problem}"))]
    if account is None:
        return [CurrencyDecision(own, Decision(Action.PAY, checked_with_stripe=False))]
    if not account.payouts_enabled:
        return [CurrencyDecision(own, Decision(Action.SKIP, NOT_ENABLED))]
    if balance is None:
        return [CurrencyDecision(own, Decision(Action.PAY, checked_with_stripe=False))]
    reserved, minimums = reserved or {}, minimums or {}
    decisions = []
    for currency in sorted({own, *balance}, key=lambda code: (code != own, code)):
        held = reserved.get(currency, 0)
        available = balance.get(currency, 0) - held
        amount = payable_amount(available, currency) if available > 0 else None
        if not amount or amount <= 0:
            if currency == own or balance.get(currency, 0) > 0:
                reason = f"No available balance in {currency}"
                if held:
                    reason += f" once {format_amount(from_minor_units(held, currency))} "
                    reason += f"{currency} of approved manual payouts is paid"
                decisions.append(CurrencyDecision(currency, Decision(Action.SKIP, reason)))
            continue
        if currency_problem(currency):
            reason = f"{currency} balance: {currency_problem(currency)}"
            decisions.append(CurrencyDecision(currency, Decision(Action.SKIP, reason)))
            continue
        minimum = creator.payout_minimum if currency == own else minimums.get(currency)
        if minimum is None:
            reason = (
                f"No payout minimum for {currency}: add one to PAYOUT_MINIMUMS to pay out "
                f"the {format_amount(amount)} {currency} balance"
            )
            decisions.append(CurrencyDecision(currency, Decision(Action.SKIP, reason)))
            continue
        if amount < minimum:
            reason = (
                f"Available balance {format_amount(amount)} {currency} is below the payout "
                f"minimum {format_amount(minimum)} {currency}"
            )
            decisions.append(CurrencyDecision(currency, Decision(Action.SKIP, reason)))
            continue
        pay = Decision(Action.PAY, minor_units=to_minor_units(amount, currency))
        decisions.append(CurrencyDecision(currency, pay))
    return decisions
