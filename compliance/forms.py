"""Portal forms of compliance. They check the shape of what a member typed; the rules (formats, scope, dates,
countries, who may file) live in compliance.services, which every door shares."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from exchange.models import MemberFirm
from listings.models import DataProduct

from .models import EvidenceKind
from .selectors import judicial_authorities

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DELIVERY_CHOICES = [("file", _("File")), ("api", _("API")), ("sandbox", _("In-country sandbox"))]


def product_title(product: DataProduct) -> str:
    """The listed title, else the newest open revision's (prefetched by listings' provider selector)."""
    if product.listed_revision_id is not None:
        return str(product)
    open_revisions = getattr(product, "open_revisions", None)
    return open_revisions[0].title if open_revisions else str(product)


def read_capped(upload: Any) -> bytes:
    """An uploaded document's bytes, one past the limit at most (enough for the service to refuse an oversize
    file; a huge upload is never read whole); none for no upload."""
    return upload.read(settings.COMPLIANCE_FILING_MAX_BYTES + 1) if upload else b""


class ProductChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: DataProduct) -> str:
        return product_title(obj)


class FilingForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind of evidence"), choices=[(value, capfirst(label)) for value, label in EvidenceKind.choices]
    )
    reference = forms.CharField(
        label=_("Reference number"), max_length=100, help_text=_("The number the authority or issuer gave it.")
    )
    document = forms.FileField(label=_("Document"))
    all_products = forms.BooleanField(label=_("Covers all our products"), required=False)
    products = ProductChoices(
        label=_("Products covered"),
        queryset=DataProduct.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    destinations = forms.CharField(
        label=_("Destination countries"),
        required=False,
        max_length=1000,
        help_text=_("ISO country codes separated by commas, e.g. SG, DE. Leave empty for every destination."),
    )
    issued_on = forms.DateField(label=_("Issued or effective on"), widget=DATE)
    expires_on = forms.DateField(
        label=_("Valid until (its last day)"),
        required=False,
        widget=DATE,
        help_text=_("Leave empty when it does not lapse by date, or when the law fixes its validity."),
    )
    receipt_reference = forms.CharField(
        label=_("Filing receipt number"),
        max_length=100,
        required=False,
        help_text=_("Standard contracts: the provincial CAC's filing receipt, if you have it already."),
    )
    receipt_filed_on = forms.DateField(label=_("Filing receipt dated"), required=False, widget=DATE)
    receipt_document = forms.FileField(
        label=_("The receipt (PDF, PNG or JPG)"), required=False, help_text=_("With its number and date.")
    )
    buyer_firm = forms.ModelChoiceField(
        label=_("For the authority"),
        queryset=MemberFirm.objects.none(),
        required=False,
        help_text=_("PRC approvals only: the foreign judicial or law-enforcement body whose request it answers."),
    )

    def __init__(self, *args: Any, products: QuerySet[DataProduct], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["products"].queryset = products  # type: ignore[attr-defined]
        self.fields["buyer_firm"].queryset = judicial_authorities()  # type: ignore[attr-defined]
        limit = settings.COMPLIANCE_FILING_MAX_BYTES // 2**20
        formats = ", ".join(settings.COMPLIANCE_FILING_EXTENSIONS).upper()
        self.fields["document"].help_text = _("%(formats)s, at most %(mb)d MB.") % {"formats": formats, "mb": limit}

    def clean_document(self) -> Any:
        upload = self.cleaned_data["document"]
        # The size the client declared is checked before anything is read; the view caps the read too.
        if upload.size is not None and upload.size > settings.COMPLIANCE_FILING_MAX_BYTES:
            raise ValidationError(
                _("The document is larger than %(mb)d MB.") % {"mb": settings.COMPLIANCE_FILING_MAX_BYTES // 2**20}
            )
        return upload

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # returns cleaned_data; the stubs allow None
        issued, expires = data.get("issued_on"), data.get("expires_on")
        if issued and expires and expires < issued:
            self.add_error("expires_on", _("Its last valid day cannot come before the day it was issued."))
        return data

    def clean_destinations(self) -> list[str]:
        value = self.cleaned_data["destinations"]
        return [part.strip().upper() for part in value.replace(";", ",").split(",") if part.strip()]


class ReceiptForm(forms.Form):
    receipt_reference = forms.CharField(label=_("Filing receipt number"), max_length=100)
    receipt_filed_on = forms.DateField(label=_("Filing receipt dated"), widget=DATE)
    receipt_document = forms.FileField(label=_("The receipt (PDF, PNG or JPG)"))


class ProductChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: DataProduct) -> str:
        return f"{obj} · {obj.provider.legal_name_en}"


class PrecheckForm(forms.Form):
    product = ProductChoice(label=_("Data product"), queryset=DataProduct.objects.none(), empty_label=None)
    delivery = forms.ChoiceField(label=_("Delivery"), choices=DELIVERY_CHOICES, initial="file")

    def __init__(self, *args: Any, products: QuerySet[DataProduct], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = products  # type: ignore[attr-defined]
