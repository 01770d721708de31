from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from .models import ApiKey, MemberFirm, User


class LoginForm(AuthenticationForm):
    username = forms.EmailField(
        label=_("E-mail address"), max_length=254, widget=forms.EmailInput(attrs={"autofocus": True})
    )


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What the key is for, e.g. “ERP integration”."))
    user = forms.ModelChoiceField(
        label=_("Acts for"), queryset=None, help_text=_("The member whose access the key uses.")
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ],
        help_text=_("Read: catalogue and statements. Trade: orders and everything else that changes something."),
    )
    lifetime_days = forms.IntegerField(
        label=_("Valid for (days)"), min_value=1, max_value=730, initial=365, help_text=_("At most two years.")
    )

    def __init__(self, *args: Any, firm: MemberFirm, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(membership__firm=firm, is_active=True).order_by("email")
