"""Each creator's Stripe account and available balance, read once per run.

A run asks Stripe about a connected account (GET only) the first time one of its payouts
needs it, then keeps what is left of the balance as it pays, so later payouts of the same
creator draw on what earlier ones left — in the real run and in the dry run alike.
"""

from payouts import stripe_client


class AccountBook:
    """The run's cache of accounts and balances; `ask_stripe=False` never calls Stripe
    (a dry run without STRIPE_SECRET_KEY) and answers None for both."""

    def __init__(self, *, ask_stripe=True):
        self.ask_stripe = ask_stripe
        self._accounts = {}
        self._balances = {}

    def account(self, creator):
        return self._read(self._accounts, stripe_client.retrieve_account, creator)

    def balance(self, creator):
        """Available minor units by currency ({"EUR": 12345}), after this run's payouts."""
        return self._read(self._balances, stripe_client.retrieve_balance, creator)

    def _read(self, cache, retrieve, creator):
        if not self.ask_stripe:
            return None
        account_id = creator.stripe_account_id
        if account_id not in cache:
            cache[account_id] = retrieve(account_id)
        return cache[account_id]

    def debit(self, creator, currency, minor_units):
        balance = self._balances.get(creator.stripe_account_id)
        if balance is not None:
            currency = currency.upper()
            balance[currency] = balance.get(currency, 0) - minor_units
