"""Portal forms of the catalogue. They check the shape of what a member typed and turn it into the plain
values the services take; the rules themselves (dictionary, licence, plans, samples) live in
listings.validation and listings.services, which every door shares.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from exchange.exceptions import ApplicationError
from exchange.forms import add_service_errors
from exchange.models import Board

from . import validation
from .models import (
    Category,
    Classification,
    DeliveryMode,
    FieldType,
    ImportantSource,
    PricePlan,
    Revision,
    SandboxRole,
    UpdateFrequency,
    sandbox_min_individuals_default,
)

TEXTAREA_SHORT = forms.Textarea(attrs={"rows": 2})
TEXTAREA = forms.Textarea(attrs={"rows": 5})


def _split(value: str, separators: str = ",") -> list[str]:
    for separator in separators[1:]:
        value = value.replace(separator, separators[0])
    return [part.strip() for part in value.split(separators[0]) if part.strip()]


def _reuse(cleaner: Any, value: Any) -> Any:
    """Run a listings.validation cleaner; its errors (keyed by model field) become this form field's."""
    try:
        return cleaner(value)
    except ValidationError as exc:
        raise ValidationError(exc.messages) from None


DICTIONARY_ROW_FIELDS = ("name", "type", "description", "unit", "personal", "sensitive", "identifier", "sandbox")


class DictionaryRowForm(forms.Form):
    """One field of the data dictionary. A row left entirely blank is ignored (the extra rows of the table)."""

    name = forms.CharField(label=_("Name"), max_length=64, required=False)
    type = forms.ChoiceField(label=_("Type"), choices=[("", "—"), *FieldType.choices], required=False)
    description = forms.CharField(label=_("Description"), max_length=500, required=False)
    unit = forms.CharField(label=_("Unit"), max_length=50, required=False)
    personal = forms.BooleanField(label=_("Personal"), required=False)
    sensitive = forms.BooleanField(label=_("Sensitive"), required=False)
    identifier = forms.BooleanField(
        label=_("Identifier"),
        required=False,
        help_text=_("The person's identifier: the sandbox counts individuals on it."),
    )
    sandbox = forms.ChoiceField(label=_("Sandbox"), choices=SandboxRole.choices, required=False)

    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return not any(data.get(k) for k in DICTIONARY_ROW_FIELDS)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # returns cleaned_data; the stubs allow None
        if self.is_blank():
            return data
        name = data.get("name", "")
        if not name:
            self.add_error("name", _("Give the field a name."))
        elif not validation.FIELD_NAME.match(name):
            self.add_error("name", _("Letters, digits and _, starting with a letter or _."))
        if not data.get("type") and "type" not in self.errors:
            self.add_error("type", _("Choose a type."))
        if data.get("sensitive") and not data.get("personal"):
            self.add_error("sensitive", _("Sensitive personal information is personal information."))
        if data.get("identifier") and not data.get("personal"):
            self.add_error("identifier", _("The person's identifier is personal information."))
        if data.get("identifier") and data.get("sandbox"):
            self.add_error(
                "sandbox",
                _("The person's identifier is never a sandbox's output: it is neither a measure nor a dimension."),
            )
        return data


class BaseDictionaryFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        seen: set[str] = set()
        duplicates: list[str] = []
        rows = 0
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.is_blank():
                continue
            rows += 1
            name = (form.cleaned_data.get("name") or "").lower()
            if not name or "name" in form.errors:
                continue
            if name in seen:
                form.add_error("name", _("This name is used twice."))
                duplicates.append(name)
            seen.add(name)
        if duplicates:
            raise ValidationError(
                _("Field names must be unique: %(names)s used twice.")
                % {"names": ", ".join(f"“{n}”" for n in dict.fromkeys(duplicates))}
            )
        if not rows and not any(self.errors):
            raise ValidationError(_("Describe at least one field."))

    def rows(self) -> list[dict[str, Any]]:
        return [{k: form.cleaned_data[k] for k in DICTIONARY_ROW_FIELDS} for form in self.forms if not form.is_blank()]


def dictionary_formset(
    data: Any = None, *, initial: list[dict[str, Any]] | None = None, extra: int = 3
) -> BaseDictionaryFormSet:
    formset_class = forms.formset_factory(
        DictionaryRowForm,
        formset=BaseDictionaryFormSet,
        extra=extra,
        max_num=validation.MAX_FIELDS,
        validate_max=True,
        absolute_max=validation.MAX_FIELDS,
    )
    return formset_class(data, initial=initial, prefix="dictionary")  # type: ignore[return-value]  # a BaseDictionaryFormSet subclass; formset_factory's stubs drop it


class ProductContentForm(forms.Form):
    """A revision's content, except the data dictionary (a formset beside it) and the sample (uploaded apart)."""

    title_en = forms.CharField(label=_("Title (English)"), max_length=200)
    title_zh = forms.CharField(label=_("Title (Chinese)"), max_length=200)
    summary_en = forms.CharField(label=_("Summary (English)"), max_length=500, widget=TEXTAREA_SHORT)
    summary_zh = forms.CharField(label=_("Summary (Chinese)"), max_length=500, widget=TEXTAREA_SHORT)
    description_en = forms.CharField(label=_("Description (English)"), required=False, widget=TEXTAREA)
    description_zh = forms.CharField(label=_("Description (Chinese)"), required=False, widget=TEXTAREA)
    category = forms.ModelChoiceField(label=_("Category"), queryset=Category.objects.none())
    tags = forms.CharField(label=_("Tags"), required=False, max_length=1000, help_text=_("Separated by commas."))
    classification = forms.ChoiceField(label=_("Classification"), choices=Classification.choices)
    important_source = forms.ChoiceField(
        label=_("Why important"), choices=ImportantSource.choices, initial=ImportantSource.NONE
    )
    contains_personal_info = forms.BooleanField(label=_("Contains personal information"), required=False)
    personal_info_subjects = forms.IntegerField(
        label=_("Individuals covered"), min_value=0, max_value=10**13, initial=0
    )
    sensitive_personal_info_subjects = forms.IntegerField(
        label=_("Individuals with sensitive personal information"), min_value=0, max_value=10**13, initial=0
    )
    origin_countries = forms.CharField(
        label=_("Countries where the data was collected"),
        max_length=1000,
        help_text=_("ISO 3166-1 alpha-2 codes separated by commas, e.g. CN, SG."),
    )
    origin_region = forms.CharField(label=_("Region of collection"), max_length=200, required=False)
    export_destinations = forms.CharField(
        label=_("Destination countries"),
        max_length=1000,
        required=False,
        help_text=_("Where buyers may receive it: ISO codes separated by commas; empty for every country."),
    )
    coverage_start = forms.DateField(
        label=_("Coverage from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    coverage_end = forms.DateField(
        label=_("Coverage to"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    coverage_geography = forms.CharField(label=_("Geographic coverage"), max_length=200, required=False)
    update_frequency = forms.ChoiceField(label=_("Update frequency"), choices=UpdateFrequency.choices)
    volume = forms.CharField(
        label=_("Volume"), max_length=200, required=False, help_text=_("E.g. “12 million rows, 4 GB”.")
    )
    delivery_modes = forms.MultipleChoiceField(
        label=_("Delivery modes"), choices=DeliveryMode.choices, widget=forms.CheckboxSelectMultiple
    )
    licence_en = forms.CharField(label=_("Licence (English)"), widget=TEXTAREA)
    licence_zh = forms.CharField(label=_("Licence (Chinese)"), widget=TEXTAREA)
    purposes = forms.CharField(
        label=_("Permitted purposes"), widget=forms.Textarea(attrs={"rows": 3}), help_text=_("One per line.")
    )
    territories = forms.CharField(
        label=_("Territories"),
        max_length=1000,
        initial=validation.WORLDWIDE,
        help_text=_("ISO country codes separated by commas, or “worldwide”."),
    )
    duration_months = forms.IntegerField(
        label=_("Licence duration (months)"),
        required=False,
        min_value=1,
        max_value=120,
        help_text=_("Leave empty for no end."),
    )
    onward_transfer = forms.BooleanField(label=_("Onward transfer allowed"), required=False)
    resale = forms.BooleanField(label=_("Resale allowed"), required=False)
    requires_approval = forms.BooleanField(
        label=_("Buyers need the provider's approval"),
        required=False,
        help_text=_("Buyers then state their intended use before buying."),
    )
    sandbox_min_individuals = forms.IntegerField(
        label=_("Sandbox: individuals per result row, at least"),
        required=False,
        initial=sandbox_min_individuals_default,
        help_text=_(
            "Sandbox delivery: each row a query answers aggregates at least this many distinct individuals (the "
            "dictionary's identifier); rows with fewer are suppressed."
        ),
    )

    def __init__(self, *args: Any, categories: QuerySet[Category], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = categories  # type: ignore[attr-defined]

    @classmethod
    def initial_from(cls, revision: Revision) -> dict[str, Any]:
        initial = {name: getattr(revision, name) for name in cls.base_fields if hasattr(revision, name)}
        terms = revision.licence_terms or {}
        initial.update(
            category=revision.category_id,
            tags=", ".join(revision.tags),
            origin_countries=", ".join(revision.origin_countries),
            export_destinations=", ".join(revision.export_destinations),
            purposes="\n".join(terms.get("purposes", [])),
            territories=", ".join(terms.get("territories", [])),
            duration_months=terms.get("duration_months"),
            onward_transfer=terms.get("onward_transfer", False),
            resale=terms.get("resale", False),
        )
        return initial

    def clean_tags(self) -> list[str]:
        return _reuse(validation.clean_tags, _split(self.cleaned_data["tags"], ",，"))

    def clean_origin_countries(self) -> list[str]:
        return _reuse(validation.clean_origin_countries, _split(self.cleaned_data["origin_countries"], ",， "))

    def clean_export_destinations(self) -> list[str]:
        return _reuse(validation.clean_export_destinations, _split(self.cleaned_data["export_destinations"], ",， "))

    def clean_sandbox_min_individuals(self) -> int:
        value = self.cleaned_data["sandbox_min_individuals"]
        if value is None:  # left empty: the exchange's minimum
            return sandbox_min_individuals_default()
        return _reuse(validation.clean_sandbox_min_individuals, value)

    def clean_purposes(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["purposes"].splitlines() if line.strip()]

    def clean_territories(self) -> list[str]:
        return _split(self.cleaned_data["territories"], ",， ")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # returns cleaned_data; the stubs allow None
        if {"purposes", "territories", "duration_months"} <= set(data):
            terms = {
                "purposes": data["purposes"],
                "territories": data["territories"],
                "duration_months": data["duration_months"],
                "onward_transfer": data.get("onward_transfer", False),
                "resale": data.get("resale", False),
            }
            try:
                data["licence_terms"] = validation.clean_licence_terms(terms)
            except ValidationError as exc:
                for key, messages in exc.message_dict.items():
                    name = key.removeprefix("licence_terms.")
                    self.add_error(name if name in LICENCE_TERM_FIELDS else "territories", messages)
        return data

    def content(self, dictionary: list[dict[str, Any]]) -> dict[str, Any]:
        """The keyword arguments of product_create / revision_update."""
        data = self.cleaned_data
        content = {name: data[name] for name in CONTENT_FROM_FORM}
        content["licence_terms"] = data["licence_terms"]
        content["dictionary"] = dictionary
        return content

    def add_service_errors(self, exc: ValidationError | ApplicationError, formset: BaseDictionaryFormSet) -> None:
        """Put a service's refusal next to the field it names. The services key a field's parts by dotted path
        (`dictionary.1.name`, `licence_terms.duration_months`, `tags.0`): a dictionary field's errors go on its
        row of the table (above the table when no row matches), the licence terms' on their own fields here,
        a list's on the list's field."""
        if not (isinstance(exc, ValidationError) and hasattr(exc, "error_dict")):
            add_service_errors(self, exc)
            return
        rows = [form for form in formset.forms if not form.is_blank()]
        above_table: list[str] = []
        errors: dict[str, list[str]] = {}
        for key, messages in exc.message_dict.items():
            root, _, rest = key.partition(".")
            if root == "dictionary":
                index, _, attribute = rest.partition(".")
                row = rows[int(index)] if index.isdigit() and int(index) < len(rows) else None
                if row is not None and attribute in row.fields:
                    row.add_error(attribute, messages)
                else:
                    above_table.extend(messages)
            elif root == "licence_terms":
                errors.setdefault(rest if rest in LICENCE_TERM_FIELDS else "territories", []).extend(messages)
            else:
                errors.setdefault(root, []).extend(messages)
        if above_table:
            formset._non_form_errors = formset.error_class(  # type: ignore[attr-defined]
                [*formset.non_form_errors(), *above_table], error_class="nonform"
            )
        if errors:
            add_service_errors(self, ValidationError(errors))


# The licence terms are fields of the content form of their own.
LICENCE_TERM_FIELDS = ("purposes", "territories", "duration_months", "onward_transfer", "resale")


CONTENT_FROM_FORM = (
    "title_en", "title_zh", "summary_en", "summary_zh", "description_en", "description_zh",
    "category", "tags", "classification", "important_source",
    "contains_personal_info", "personal_info_subjects", "sensitive_personal_info_subjects",
    "origin_countries", "origin_region", "export_destinations", "coverage_start", "coverage_end",
    "coverage_geography", "update_frequency", "volume", "delivery_modes", "licence_en", "licence_zh", "requires_approval",
    "sandbox_min_individuals",
)  # fmt: skip


class ProductCreateForm(ProductContentForm):
    board = forms.ModelChoiceField(label=_("Board"), queryset=Board.objects.none(), empty_label=None)
    field_order = ["board"]

    def __init__(self, *args: Any, boards: QuerySet[Board], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["board"].queryset = boards  # type: ignore[attr-defined]


class SampleUploadForm(forms.Form):
    sample = forms.FileField(
        label=_("Sample file"), help_text=_("CSV with a header row, or JSON: a list of objects, one per row.")
    )

    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes

    def clean_sample(self) -> Any:
        upload = self.cleaned_data["sample"]
        extension = upload.name.rsplit(".", 1)[-1].lower() if "." in upload.name else ""
        if extension not in validation.SAMPLE_FORMATS:
            raise ValidationError(_("A sample is a .csv or .json file."))
        # The size the client declared is checked before anything is read; the read is capped too.
        if upload.size is not None and upload.size > self.max_bytes:
            raise ValidationError(_("A sample is at most %(kib)d KiB.") % {"kib": self.max_bytes // 1024})
        return upload


class DatasetUploadForm(forms.Form):
    dataset = forms.FileField(
        label=_("Dataset file"),
        help_text=_(
            "CSV with a header row, JSON lines (one object per line) or Parquet, with the dictionary's fields."
        ),
    )

    def clean_dataset(self) -> Any:
        upload = self.cleaned_data["dataset"]
        if upload.name.rsplit(".", 1)[-1].lower() not in ("csv", "jsonl", "ndjson", "parquet"):
            raise ValidationError(_("A dataset is a .csv, .jsonl (JSON lines) or .parquet file."))
        return upload


class PricePlanForm(forms.Form):
    name_en = forms.CharField(label=_("Name (English)"), max_length=100)
    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=100, required=False)
    kind = forms.ChoiceField(label=_("Kind"), choices=PricePlan.Kind.choices)
    period = forms.ChoiceField(
        label=_("Billing period"),
        choices=[("", _("None (one-off)")), *PricePlan.Period.choices],
        required=False,
    )
    currency = forms.ChoiceField(label=_("Currency"), choices=[])
    # Parsed as Decimal here; the limits (not negative, not absurd) are the service's, shared with the API.
    amount = forms.DecimalField(label=_("Price"), max_digits=14, decimal_places=2)
    included_calls = forms.IntegerField(
        label=_("Calls included per period"), required=False, min_value=0, max_value=2**31 - 1
    )
    unit_price = forms.DecimalField(
        label=_("Price per call beyond those included"), required=False, max_digits=14, decimal_places=6
    )

    buyer_code = forms.CharField(
        label=_("Private offer for"),
        required=False,
        max_length=20,
        help_text=_("The buyer firm's Unified Social Credit Code or LEI; only that firm will see the plan."),
    )

    def __init__(self, *args: Any, currencies: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [(c, c) for c in currencies]  # type: ignore[attr-defined]

    def clean_buyer_code(self) -> str:
        # Firms are found by the public identifier the provider knows, never picked from a list of members;
        # the service finds the firm and gives one refusal for unknown codes and firms not admitted.
        return self.cleaned_data["buyer_code"].strip().upper()


class ObjectionForm(forms.Form):
    reason = forms.CharField(
        label=_("What do you object to?"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("The public notice pauses until a listing reviewer decides on it."),
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
