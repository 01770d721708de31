"""Portal forms of trading. They check the shape of what a member typed; the rules (who may buy what, the amounts,
the compliance gate, available cash) live in settlements.selectors.order_terms and the services, which the API
shares, and their refusals come back onto these forms (`add_refusal`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from exchange.exceptions import ApplicationError
from exchange.money import CURRENCY_CHOICES
from listings.models import DeliveryMode

from .models import AccessRequest, Account, Entitlement, Order

TEXTAREA = forms.Textarea(attrs={"rows": 3})
# The largest amount a person may type: what a ledger amount holds (the services refuse more than is held anyway).
# The ledger's amounts (settlements.models): 18 digits, 2 of them decimal places.
MAX_DIGITS, DECIMAL_PLACES = 18, 2


def add_field_errors(form: forms.Form, exc: ApplicationError) -> bool:
    """The messages a service's refusal gives per field (its details) under the form's fields of the same name;
    whether any field took one."""
    placed = False
    for name, messages in (exc.details or {}).items():
        if name in form.fields and isinstance(messages, list) and all(isinstance(m, str) for m in messages):
            form.add_error(name, list(messages))
            placed = True
    return placed


def add_refusal(form: forms.Form, exc: ApplicationError) -> None:
    """A service's refusal on the form: under the fields it names, else its message above the form."""
    if not add_field_errors(form, exc):
        form.add_error(None, exc.message)


class OrderForm(forms.Form):
    """What the buyer chooses for one plan: how the data is delivered, what it will be used for, and (metered
    plans) the usage budget held in escrow."""

    delivery_mode = forms.ChoiceField(label=_("Delivery"), widget=forms.RadioSelect)
    intended_use = forms.CharField(
        label=_("Intended use"),
        max_length=2000,
        widget=TEXTAREA,
        help_text=_(
            "What your firm will use the data for: the provider and the exchange read it, and the order keeps it."
        ),
    )
    usage_budget = forms.DecimalField(
        label=_("Usage budget"),
        max_digits=MAX_DIGITS,
        decimal_places=DECIMAL_PLACES,
        min_value=Decimal("0.01"),
        help_text=_("Held in escrow and charged as your firm uses the API beyond the calls included."),
    )

    def __init__(
        self,
        *args: Any,
        delivery_modes: list[str],
        metered: bool,
        approved_use: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(DeliveryMode.choices)
        self.fields["delivery_mode"].choices = [(m, labels.get(m, m)) for m in delivery_modes]  # type: ignore[attr-defined]  # a ChoiceField
        if delivery_modes and not self.is_bound:
            self.initial.setdefault("delivery_mode", delivery_modes[0])
        if not metered:
            del self.fields["usage_budget"]
        self.approved_use = approved_use
        if approved_use:
            # The provider approved one stated use: the order keeps that one (the service takes the request's).
            del self.fields["intended_use"]

    def order_values(self) -> dict[str, Any]:
        """The keyword arguments of order_terms and order_place this form gives."""
        data = self.cleaned_data
        return {
            "delivery_mode": data["delivery_mode"],
            "intended_use": data.get("intended_use", ""),
            "usage_budget": data.get("usage_budget"),
        }


class ConfirmForm(OrderForm):
    """The review page's confirmation: the same choices again, carried in hidden fields, with the one-time token
    the review issued and the buyer's acceptance of the licence."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    accept_licence = forms.BooleanField(
        label=_("My firm accepts the licence and its terms for this order."),
        error_messages={"required": _("Accept the licence to place the order.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("delivery_mode", "intended_use", "usage_budget"):
            if name in self.fields:
                self.fields[name].widget = forms.HiddenInput()


class AccessRequestForm(forms.Form):
    intended_use = forms.CharField(
        label=_("Intended use"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What your firm will use the data for. The provider approves or declines on it."),
    )
    destination = forms.ChoiceField(
        label=_("Where the data will be used"),
        help_text=_("The exchange assesses transfers to your firm's country of registration."),
    )

    def __init__(self, *args: Any, cross_border: bool, country: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if cross_border:
            self.fields["destination"].choices = list(countries)  # type: ignore[attr-defined]  # a ChoiceField
            self.initial.setdefault("destination", country)
        else:
            del self.fields["destination"]


class ApproveForm(forms.Form):
    reason = forms.CharField(
        label=_("Note to the buyer"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label=_("Why you decline"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("The buyer reads it."),
        error_messages={"required": _("Say why you decline: the buyer reads it.")},
    )


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (optional)"), max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class AcceptForm(forms.Form):
    pass


class DisputeForm(forms.Form):
    reason = forms.CharField(
        label=_("What is wrong with the delivery?"),
        max_length=2000,
        widget=TEXTAREA,
        help_text=_("The provider and the exchange read it; a settlement clerk resolves the dispute."),
        error_messages={"required": _("Say what is wrong with the delivery: the provider and the exchange read it.")},
    )


class DeliveryForm(forms.Form):
    note = forms.CharField(
        label=_("Note to the buyer (optional)"),
        max_length=2000,
        required=False,
        widget=TEXTAREA,
        help_text=_("E.g. how and where the data was delivered."),
    )


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("Any")), *Order.Status.choices])


class EntitlementFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("Any")), *Entitlement.Status.choices])


class AccessRequestFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any")), *AccessRequest.Status.choices]
    )


MEMBER_ACCOUNT_CHOICES = [(k.value, k.label) for k in Account.Kind if k in Account.MEMBER_KINDS]


class StatementFilterForm(forms.Form):
    currency = forms.ChoiceField(label=_("Currency"), required=False, choices=[("", _("Any")), *CURRENCY_CHOICES])
    account = forms.ChoiceField(label=_("Account"), required=False, choices=[("", _("Any")), *MEMBER_ACCOUNT_CHOICES])


class WithdrawalForm(forms.Form):
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES)
    amount = forms.DecimalField(
        label=_("Amount"), max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, min_value=Decimal("0.01")
    )
    bank_account = forms.CharField(
        label=_("To bank account"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Account holder, number, bank and SWIFT code, as on your firm's file with the exchange."),
    )

    def __init__(self, *args: Any, available: dict[str, Decimal], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.available = available

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # returns cleaned_data; the stubs allow None
        currency, amount = data.get("currency"), data.get("amount")
        if currency and amount is not None:
            available = self.available.get(currency, Decimal("0.00"))
            if amount > available:
                self.add_error(
                    "amount",
                    _("Only %(available)s %(currency)s of cash is available to withdraw.")
                    % {"available": available, "currency": currency},
                )
        return data
