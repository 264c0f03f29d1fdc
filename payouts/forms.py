"""The admin's payout forms: a request's terms, and the steps of the staff actions."""

from django import forms

from payouts.models import Payout
from payouts.money import currency_problem, normalize_currency


class PayoutForm(forms.ModelForm):
    """A payout request's terms; the model's `clean()` checks them against each other and
    against the stored row (terms are fixed once the payout is approved)."""

    class Meta:
        model = Payout
        fields = ("creator", "amount", "currency")
        help_texts = {
            "currency": "ISO 4217 code of a currency Stripe pays out in (EUR, usd, JPY…); "
            "any case, stored in capitals.",
            "amount": "More than zero, and exact in the currency (whole yen, whole won…).",
        }

    def clean_currency(self):
        currency = normalize_currency(self.cleaned_data.get("currency"))
        problem = currency_problem(currency)
        if problem:
            raise forms.ValidationError(problem)
        return currency


class RejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Stored on the payout as its failure reason.",
    )
