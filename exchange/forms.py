from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django_otp import devices_for_user
from django_otp.models import Device

from .exceptions import ApplicationError
from .models import ApiKey, MemberFirm, User


def add_service_errors(
    form: forms.Form,
    exc: ValidationError | ApplicationError,
    *,
    aliases: Mapping[str, str] | None = None,
    default_field: str | None = None,
) -> None:
    """A service's refusal on the form that asked for it: a ValidationError's messages under the fields they
    name (`aliases` maps a service's name for a field to the form's), the others under `default_field` (by
    default above the form); an ApplicationError's message above the form.

    NotAllowed is an ApplicationError too: a view that answers it otherwise (a 403) catches it first.
    """
    if isinstance(exc, ApplicationError):
        form.add_error(None, exc.message)
        return
    if not hasattr(exc, "error_dict"):
        form.add_error(default_field, exc.messages)
        return
    for name, field_messages in exc.message_dict.items():
        name = (aliases or {}).get(name, name)
        form.add_error(name if name in form.fields else default_field, field_messages)


def add_service_messages(request: HttpRequest, exc: ValidationError | ApplicationError) -> None:
    """A service's refusal as messages on the next page, for the actions that have no form to show it on."""
    if isinstance(exc, ApplicationError):
        messages.error(request, exc.message)
        return
    for message in exc.messages:
        messages.error(request, message)


class LoginForm(AuthenticationForm):
    """The portal's log-in. Exchange staff also give the one-time code of their authenticator whenever the
    second factor is required, so that a password alone never opens a staff session on any face."""

    username = forms.EmailField(
        label=_("E-mail address"), max_length=254, widget=forms.EmailInput(attrs={"autofocus": True})
    )
    otp_token = forms.CharField(
        label=_("One-time code"),
        required=False,
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text=_("Exchange staff only: the six digits your authenticator app shows now."),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "otp_required": _("Exchange staff sign in with the one-time code from their authenticator app as well."),
        "otp_invalid": _("That one-time code is not valid. Enter the code your authenticator app shows now."),
        "otp_no_device": _("Your account has no authenticator yet: ask an exchange superuser to enrol one."),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.otp_device: Device | None = None
        if not settings.ADMIN_REQUIRE_OTP:
            del self.fields["otp_token"]  # nobody is asked for it (development, the demo)

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not (settings.ADMIN_REQUIRE_OTP and (user.is_staff or user.is_superuser)):
            return
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            raise forms.ValidationError(self.error_messages["otp_no_device"], code="otp_no_device")
        token = (self.cleaned_data.get("otp_token") or "").strip()
        if not token:
            raise forms.ValidationError(self.error_messages["otp_required"], code="otp_required")
        for device in devices:
            # verify_is_allowed() is django-otp's own throttle: failures back off exponentially per device.
            if device.verify_is_allowed()[0] and device.verify_token(token):
                self.otp_device = device
                return
        raise forms.ValidationError(self.error_messages["otp_invalid"], code="otp_invalid")


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What the key is for, e.g. “ERP integration”."))
    user: forms.ModelChoiceField = forms.ModelChoiceField(
        label=_("Acts for"), queryset=None, help_text=_("The member whose access the key uses.")
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ],
        help_text=_(
            "Read: the catalogue, compliance pre-checks and the firm's records. Trade: the firm's listings as a "
            "provider, and its filings. Manage API keys: create, rotate and revoke the firm's keys by API."
        ),
    )
    lifetime_days = forms.IntegerField(
        label=_("Valid for (days)"),
        min_value=1,
        max_value=ApiKey.MAX_LIFETIME.days,
        initial=365,
        help_text=_("At most two years."),
    )

    def __init__(self, *args: Any, firm: MemberFirm, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(membership__firm=firm, is_active=True).order_by("email")  # type: ignore[attr-defined]  # the ModelChoiceField declared above
