"""The admin's payout forms: a request's terms, and the steps of the staff actions."""

from django import forms
from django.core.validators import RegexValidator

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


class StripePayoutIdForm(forms.Form):
    stripe_payout_id = forms.CharField(
        label="Stripe payout id",
        max_length=255,
        validators=[RegexValidator(r"^po_[A-Za-z0-9]+$", "A Stripe payout id looks like po_1Abc…")],
        help_text="From the creator's connected account in the Stripe dashboard (Payouts). It is "
        "accepted only if its amount, currency and metadata payoutId are this payout's.",
    )


class ConfirmForm(forms.Form):
    """A step with nothing to fill in: the page says what will happen; submitting confirms."""
