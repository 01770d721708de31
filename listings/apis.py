"""The catalogue's API: browse and search listed products, read one, its sample and plans; providers create,
edit and submit their products and price them.

One class per operation (`<Entity><Action>Api`). Reads go through listings.selectors, which decide
visibility; writes go through listings.services, which decide who may do what. A request body is checked in
one pass (`OnePassSerializer`): every field's shape (types, lengths, enums, formats) and, for the fields that
fit, the content rules of listings.validation that the services apply too, so that one answer carries every
field's errors, keyed by dotted path; a 400 when anything does not fit the schema, a 422 when only rules are
broken. The services' NotAllowed are 403s, their state conflicts 409s, and a product the caller may not see is
a 404, exactly like a missing one.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.http import FileResponse, Http404
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, gettext_lazy
from django_countries import countries
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.fields import SkipField, get_error_detail
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from exchange.api import ClosedObject, JsonErrorsOnly, MoneyField, MoneyInputField, error_responses, json_integer
from exchange.files import file_response
from exchange.idempotency import idempotent
from exchange.models import Board
from exchange.money import CURRENCY_CHOICES
from exchange.pagination import CursorOrNumberedPagination, IdCursorPagination
from exchange.selectors import user_firm_id
from exchange.types import AuthenticatedRequest

from . import services, validation
from .filters import SORTS, CatalogueFilter
from .models import (
    Category,
    Classification,
    DataProduct,
    Dataset,
    DeliveryMode,
    FieldType,
    ImportantSource,
    ListingStatus,
    Origin,
    PricePlan,
    Revision,
    SandboxRole,
    UpdateFrequency,
)
from .selectors import (
    catalogue_facets,
    category_list,
    dataset_of,
    dataset_shown,
    plans_for_user,
    product_get_for_user,
    product_get_own,
    product_is_own,
    product_list_catalogue,
    product_list_for_provider,
    revision_draft,
    revision_for_display,
    revision_list,
)

# --- Shared pieces ------------------------------------------------------------------------------------


def _own_product(user: Any, pk: int) -> DataProduct:
    """A product of the caller's firm, for writes. Anyone else's product, seen in the catalogue or not, is
    "not found": a write never tells a caller more about a product than a read would."""
    return product_get_own(user=user, pk=pk)


def _query(request: Request) -> dict[str, str]:
    """The query parameters as plain values. DRF takes an empty form value for an absent one; an empty `revision=`
    is a value, refused by its field like any other that does not fit."""
    return request.query_params.dict()


READ_403 = "`insufficient_scope`: an API key without the `read` scope."
WRITE_403 = (
    "`not_allowed`: the caller may not do this (only a verified provider firm's administrators and traders "
    "write its products); `insufficient_scope`: an API key without the `trade` scope; `permission_denied`: a "
    "session request without its CSRF token."
)
NOT_FOUND = "`not_found`: no such product, or one the caller may not see (the two are not told apart)."
CONTENT_422 = (
    "`validation_error`: the body fits the schema but breaks a content rule (e.g. a name used twice in the "
    "dictionary, a category no longer in use, personal information not declared); every field's messages at "
    "once in `details`, keyed by dotted path. A body that also does not fit the schema is a 400 with both."
)


def _errors(descriptions: dict[int, str]) -> dict[int, Any]:
    return error_responses(descriptions, *descriptions)


def _ref(component: str) -> dict[str, str]:
    """A parameter's schema: one of the named enums of the components (exchange.settings ENUM_NAME_OVERRIDES)."""
    return {"$ref": f"#/components/schemas/{component}"}


# JSON types as the schema states them: DRF also takes 12 for a string, "12" and 12.0 for an integer and "yes"
# for a boolean, which would make a request the schema refuses succeed.


class JsonCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        data = json_integer(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@extend_schema_field({"type": "string", "format": "date", "pattern": DATE_PATTERN})
class JsonDateField(serializers.DateField):
    """A date as `YYYY-MM-DD`, and only that (a 400 otherwise); one that is no day of the calendar (2026-02-30)
    fits the schema and is refused as a rule (422)."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(DATE_PATTERN, value, re.ASCII):
            self.fail("invalid", format="YYYY-MM-DD")
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise serializers.ValidationError(
                gettext_lazy("No such day: %(date)s.") % {"date": value}, code="impossible_date"
            ) from None


class JsonBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# A character that is not white space, spelled out as the schema's (ECMAScript) regular expressions read `\S`:
# Python's own `\S` differs (it takes the control characters \x1c to \x1f for spaces, and U+FEFF for none).
NOT_ONLY_SPACE = r"[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"


class FullMatchValidator(RegexValidator):
    """The schema's `pattern` as the schema means it: Python's `$` also matches before a final newline, which
    the schema's (ECMAScript) `$` does not."""

    def __call__(self, value: Any) -> None:
        if not re.fullmatch(self.regex, str(value)):
            raise DjangoValidationError(self.message, code=self.code, params={"value": value})


def _text(*, max_length: int, blank: bool = False, pattern: str | None = None, **kwargs: Any) -> JsonCharField:
    """A text field checked as the schema states it: its length as sent (DRF would trim it first, so that 201
    characters ending in a space would pass a limit of 200), and, unless it may be blank, at least one character
    that is not a space (DRF would refuse "  " as blank, which a schema's minLength cannot say)."""
    validators: list[RegexValidator] = []
    if pattern is not None:
        validators.append(FullMatchValidator(pattern, code="invalid"))
    elif not blank:
        validators.append(RegexValidator(NOT_ONLY_SPACE, gettext_lazy("This field may not be blank."), code="blank"))
    return JsonCharField(
        max_length=max_length, allow_blank=blank, trim_whitespace=False, validators=validators, **kwargs
    )


# Whole digits of a price: as many as the exchange's highest price has (the highest itself is a rule: 422).
PRICE_DIGITS = len(str(int(settings.LISTING_MAX_PRICE)))


class OnePassSerializer(ClosedObject):
    """A request body checked in one pass: every field's shape (and no field it does not take), then the rules
    (`rule_errors`) of the fields that fit it, all in one ValidationError. DRF's own `to_internal_value` raises the
    shape errors alone."""

    def rule_errors(self, valid: dict[str, Any], refused: set[str]) -> validation.Errors:
        """The rules broken by the `valid` fields, leaving out those that read a `refused` one."""
        return {}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)  # DRF's 400 for a body that is not an object
        valid: dict[str, Any] = {}
        errors: dict[str, Any] = {
            str(k): [ErrorDetail(gettext("Unknown field."), code="invalid")]
            for k in sorted(set(data) - set(self.fields))
        }
        for field in self._writable_fields:
            name = str(field.field_name)  # bound fields have their name
            method = getattr(self, f"validate_{name}", None)
            try:
                value = field.run_validation(field.get_value(data))
                if method is not None:
                    value = method(value)
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
            except DjangoValidationError as exc:
                errors[name] = get_error_detail(exc)
            except SkipField:
                pass
            else:
                self.set_value(valid, field.source_attrs, value)
        rules = self.rule_errors(valid, set(errors))
        if rules:
            errors.update(get_error_detail(DjangoValidationError(rules)))
        if errors:
            raise serializers.ValidationError(errors)
        return valid


class ProviderOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    legal_name_en = serializers.CharField()
    legal_name_zh = serializers.CharField()
    country = serializers.ChoiceField(choices=list(countries))  # of registration


class PlanOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name_en = serializers.CharField()
    name_zh = serializers.CharField()
    kind = serializers.ChoiceField(choices=PricePlan.Kind.choices)
    period = serializers.ChoiceField(
        choices=PricePlan.Period.choices, allow_blank=True, help_text="Empty for one-off plans."
    )
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    amount = MoneyField(max_digits=14, decimal_places=2, currency_source="currency")
    included_calls = serializers.IntegerField(allow_null=True, help_text="Metered plans only; null otherwise.")
    unit_price = MoneyField(
        max_digits=14, decimal_places=6, allow_null=True, help_text="Metered plans only; null otherwise."
    )
    is_private = serializers.BooleanField(help_text="A private offer, made to the caller's firm only.")
    buyer_code = serializers.CharField(
        help_text="For a private offer, the USCC or LEI it was addressed to; empty for public plans."
    )
    is_active = serializers.BooleanField()


class DictionaryFieldSerializer(ClosedObject):
    name = _text(
        pattern=validation.FIELD_NAME.pattern,
        max_length=64,
        help_text="Letters, digits and _, starting with a letter or _; unique in the dictionary (ignoring case).",
    )
    type = serializers.ChoiceField(choices=FieldType.choices)
    description = _text(max_length=500, blank=True, required=False)
    unit = _text(max_length=50, blank=True, required=False)
    personal = JsonBooleanField(required=False, help_text="Holds personal information.")
    sensitive = JsonBooleanField(
        required=False, help_text="Holds sensitive personal information (and so is `personal` too)."
    )
    identifier = JsonBooleanField(
        required=False,
        help_text="The person's identifier (at most one field, `personal`): the sandbox counts individuals on it and "
        "never outputs it.",
    )
    sandbox = serializers.ChoiceField(
        choices=SandboxRole.choices,
        required=False,
        allow_blank=True,
        help_text="What the sandbox may do with the field: `measure` (aggregate it), `dimension` (group and filter by "
        "it), or empty (nothing).",
    )


class DictionaryFieldOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=FieldType.choices)
    description = serializers.CharField()
    unit = serializers.CharField()
    personal = serializers.BooleanField()
    sensitive = serializers.BooleanField()
    # Dictionaries written before the sandbox's rules have neither key.
    identifier = serializers.BooleanField(default=False)
    sandbox = serializers.ChoiceField(choices=SandboxRole.choices, default="")


class LicenceTermsSerializer(ClosedObject):
    purposes = serializers.ListField(
        child=_text(max_length=200), min_length=1, max_length=50, help_text="The permitted purposes."
    )
    territories = serializers.ListField(
        child=serializers.ChoiceField(choices=validation.TERRITORY_CHOICES),
        min_length=1,
        max_length=validation.MAX_COUNTRIES,
        help_text='Where the data may be used: ISO country codes, or ["worldwide"].',
    )
    duration_months = JsonIntegerField(
        min_value=1, max_value=120, allow_null=True, required=False, help_text="Null (the default): no end."
    )
    onward_transfer = JsonBooleanField(required=False)
    resale = JsonBooleanField(required=False)


class LicenceTermsOutputSerializer(serializers.Serializer):
    purposes = serializers.ListField(child=serializers.CharField())
    territories = serializers.ListField(child=serializers.ChoiceField(choices=validation.TERRITORY_CHOICES))
    duration_months = serializers.IntegerField(allow_null=True, help_text="Null: no end.")
    onward_transfer = serializers.BooleanField()
    resale = serializers.BooleanField()


class RevisionSummarySerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Revision.Status.choices)
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    review_notes = serializers.CharField(help_text="The reviewer's notes, e.g. the reasons for a rejection.")


class RevisionOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Revision.Status.choices)
    title_en = serializers.CharField()
    title_zh = serializers.CharField()
    summary_en = serializers.CharField()
    summary_zh = serializers.CharField()
    description_en = serializers.CharField()
    description_zh = serializers.CharField()
    category = serializers.CharField(source="category.code")
    tags = serializers.ListField(child=serializers.CharField())
    classification = serializers.ChoiceField(choices=Classification.choices, help_text="Declared by the provider.")
    confirmed_classification = serializers.ChoiceField(
        choices=Classification.choices, allow_blank=True, help_text="Confirmed by the reviewer; empty until then."
    )
    important_source = serializers.ChoiceField(choices=ImportantSource.choices)
    contains_personal_info = serializers.BooleanField()
    personal_info_subjects = serializers.IntegerField()
    sensitive_personal_info_subjects = serializers.IntegerField()
    sandbox_min_individuals = serializers.IntegerField(
        help_text="Sandbox delivery: each row a query answers aggregates at least this many distinct individuals."
    )
    origin = serializers.ChoiceField(choices=Origin.choices, help_text="As the compliance rules take it.")
    origin_countries = serializers.ListField(child=serializers.ChoiceField(choices=list(countries)))
    origin_region = serializers.CharField()
    export_destinations = serializers.ListField(
        child=serializers.ChoiceField(choices=list(countries)),
        help_text="Where buyers may receive it; empty means every country.",
    )
    coverage_start = serializers.DateField(allow_null=True)
    coverage_end = serializers.DateField(allow_null=True)
    coverage_geography = serializers.CharField()
    update_frequency = serializers.ChoiceField(choices=UpdateFrequency.choices)
    volume = serializers.CharField()
    delivery_modes = serializers.ListField(child=serializers.ChoiceField(choices=DeliveryMode.choices))
    dictionary = DictionaryFieldOutputSerializer(many=True)
    has_sample = serializers.SerializerMethodField()
    sample_preview = serializers.ListField(child=serializers.DictField(), help_text="The sample's first rows.")
    licence_en = serializers.CharField()
    licence_zh = serializers.CharField()
    licence_terms = LicenceTermsOutputSerializer()
    requires_approval = serializers.BooleanField()
    listed_at = serializers.DateTimeField(allow_null=True)

    def get_has_sample(self, revision: Revision) -> bool:
        return bool(revision.sample)


class DatasetSummarySerializer(serializers.Serializer):
    """What buyers see of a revision's data once its dataset is checked valid."""

    format = serializers.ChoiceField(choices=Dataset.Format.choices)
    size = serializers.IntegerField(help_text="In bytes, as uploaded.")
    row_count = serializers.IntegerField()
    sha256 = serializers.CharField(help_text="The SHA-256 of the file as uploaded, in hexadecimal.")
    validated_at = serializers.DateTimeField()


def _detail_data(request: Request, product: DataProduct, number: int | None = None) -> dict[str, Any]:
    """What the product page shows the caller: the displayed revision, the plans they may buy, and for the
    provider its revisions (the open one, and the history with the reviewers' notes)."""
    user = request.user
    revision = revision_for_display(user=user, product=product, number=number)
    own = product_is_own(user=user, product=product)
    revisions = list(revision_list(product=product)) if own else None
    sample_url = None
    if revision.sample:
        sample_url = request.build_absolute_uri(reverse("listings-api:product-sample", args=[product.pk]))
        if revision.pk != product.listed_revision_id:
            sample_url = replace_query_param(sample_url, "revision", revision.number)
    return {
        "product": product,
        "revision": revision,
        "dataset": dataset_shown(revision=revision),
        "sample_url": sample_url,
        "plans": plans_for_user(user=user, product=product),
        "open_revision": next((r for r in revisions or () if r.status in Revision.OPEN), None) if own else None,
        "revisions": revisions,
    }


# --- Pagination ---------------------------------------------------------------------------------------


class CataloguePagination(CursorOrNumberedPagination):
    """Cursor pages for the default order, newest first; numbered pages for relevance and price orders.

    A cursor needs a key that is stable, unique enough and never null: the product's first listing time (and
    its id) is. Relevance ranks and lowest visible prices are computed per request and per caller, change
    when a product or plan changes, and prices may be null (no plan in the asked currency), so a cursor on
    them would skip or repeat products; those orders page by number instead.
    """

    ordering = ("-listed_at", "-id")
    cursor_description = "The cursor from `next` or `previous`; only in the newest-first order."
    page_description = "The page number, for the relevance and price orders only."

    def position_is_valid(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:  # well-formed but impossible, e.g. month 13 or a +99:00 offset
            return False

    def uses_cursor(self, request: Request) -> bool:
        # Filter values are already validated (an invalid sort is a 400 before pagination).
        params = request.query_params
        q = params.get("q", "").strip()
        sort = params.get("sort") or ("relevance" if q else "newest")
        return sort == "newest" or (sort == "relevance" and not q)


class CatalogueFilterBackend(DjangoFilterBackend):
    """django-filter's backend, after the view's parameters have been checked against their schema, telling the
    filter whose private offers count for the price filters."""

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        view.ParamsSerializer(data=_query(request)).is_valid(raise_exception=True)
        return super().filter_queryset(request, queryset, view)

    def get_filterset_kwargs(self, request: Request, queryset: Any, view: Any) -> dict[str, Any]:
        return {**super().get_filterset_kwargs(request, queryset, view), "firm_id": user_firm_id(request.user)}


PRICE_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
CATEGORY_CODE = r"^[-a-zA-Z0-9_]+$"  # a category's code is a slug (Category.code)


class CatalogueParamsSerializer(serializers.Serializer):
    """The catalogue's filters exactly as the schema states them (the portal's form is more forgiving): an empty
    or malformed value is a 400, never taken for an absent one. CatalogueFilter then applies them."""

    q = _text(pattern=r"^[^\x00]*$", max_length=200, blank=True, required=False)
    board = serializers.ChoiceField(choices=Board.Code.choices, required=False)
    category = _text(pattern=CATEGORY_CODE, max_length=50, required=False)
    classification = serializers.ChoiceField(choices=Classification.choices, required=False)
    delivery_mode = serializers.ChoiceField(choices=DeliveryMode.choices, required=False)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES, required=False)
    price_min = _text(pattern=PRICE_PATTERN, max_length=15, required=False)
    price_max = _text(pattern=PRICE_PATTERN, max_length=15, required=False)
    provider_country = serializers.ChoiceField(choices=list(countries), required=False)
    # "true" or "false", as the schema's boolean is written in a query; not Django's other spellings ("1", "on").
    contains_personal_info = serializers.ChoiceField(choices=["true", "false"], required=False)


class CatalogueListParamsSerializer(CatalogueParamsSerializer):
    sort = serializers.ChoiceField(choices=list(SORTS), required=False)


PRICE_DESCRIPTION = (
    "{which} price of a visible active plan (with `currency`: in that currency), a decimal string such as "
    "`100.00` (at most 12 digits before the point and 2 after it)."
)
FILTER_PARAMETERS = [
    OpenApiParameter(
        "q",
        {"type": "string", "maxLength": 200, "pattern": r"^[^\x00]*$"},
        description="Words to search for in titles, summaries, descriptions and tags, in English or Chinese; "
        "every word must match. Empty: no search.",
    ),
    OpenApiParameter("board", _ref("BoardCode"), description="Only products on this board."),
    OpenApiParameter(
        "category",
        {"type": "string", "maxLength": 50, "pattern": CATEGORY_CODE},
        description="Only products of this category (its `code`, from `/categories`).",
    ),
    OpenApiParameter(
        "classification",
        _ref("Classification"),
        description="Only products of this classification, as the listing reviewer confirmed it.",
    ),
    OpenApiParameter("delivery_mode", _ref("DeliveryMode"), description="Only products offering this delivery mode."),
    OpenApiParameter(
        "currency", _ref("Currency"), description="Only products with a plan the caller may buy in this currency."
    ),
    OpenApiParameter(
        "price_min",
        {"type": "string", "format": "decimal", "pattern": PRICE_PATTERN},
        description=PRICE_DESCRIPTION.format(which="Lowest"),
    ),
    OpenApiParameter(
        "price_max",
        {"type": "string", "format": "decimal", "pattern": PRICE_PATTERN},
        description=PRICE_DESCRIPTION.format(which="Highest"),
    ),
    OpenApiParameter(
        "provider_country", _ref("CountryCode"), description="Only products of providers registered in this country."
    ),
    OpenApiParameter(
        "contains_personal_info",
        OpenApiTypes.BOOL,
        description="`true`: only products containing personal information; `false`: only products without.",
    ),
]
SORT_PARAMETER = OpenApiParameter(
    "sort",
    {"type": "string", "enum": list(SORTS)},
    description="`newest` (first listed, newest first; the default without `q`), `relevance` (the default with "
    "`q`), `price_asc` or `price_desc` (by the lowest price of a plan the caller may buy).",
)


# --- Categories ----------------------------------------------------------------------------------------


class CategoryListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Category
            fields = ["code", "name_en", "name_zh"]

    @extend_schema(
        operation_id="categories_list",
        summary="The category taxonomy",
        responses={200: OutputSerializer(many=True), **_errors({403: READ_403})},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(category_list(), many=True).data)


# --- The catalogue ------------------------------------------------------------------------------------


class ProductListApi(ListAPIView):
    ParamsSerializer = CatalogueListParamsSerializer

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        title_en = serializers.CharField(source="listed_revision.title_en")
        title_zh = serializers.CharField(source="listed_revision.title_zh")
        summary_en = serializers.CharField(source="listed_revision.summary_en")
        summary_zh = serializers.CharField(source="listed_revision.summary_zh")
        category = serializers.CharField(source="listed_revision.category.code")
        board = serializers.ChoiceField(source="board.code", choices=Board.Code.choices)
        provider = ProviderOutputSerializer()
        classification = serializers.ChoiceField(
            source="listed_revision.confirmed_classification",
            choices=Classification.choices,
            help_text="As confirmed by the listing reviewer.",
        )
        contains_personal_info = serializers.BooleanField(source="listed_revision.contains_personal_info")
        delivery_modes = serializers.ListField(
            source="listed_revision.delivery_modes", child=serializers.ChoiceField(choices=DeliveryMode.choices)
        )
        certificate_number = serializers.CharField(
            help_text="The registration certificate's number (every listed product has one)."
        )
        listed_at = serializers.DateTimeField(help_text="When the product was first listed.")
        plans = PlanOutputSerializer(source="visible_plans", many=True)

    serializer_class = OutputSerializer
    filter_backends = [CatalogueFilterBackend]
    filterset_class = CatalogueFilter
    pagination_class = CataloguePagination

    def get_queryset(self) -> Any:
        return product_list_catalogue(user=self.request.user)

    @extend_schema(
        operation_id="products_list",
        summary="Search the catalogue",
        description=(
            "Listed products on the boards the caller's firm is admitted to, with the plans it may buy (public "
            "plans and private offers made to it). The same filters and search as the portal.\n\n"
            "**Pagination.** The default order (`sort=newest`: first listed, newest first) is paged by cursor: "
            "follow `next` and `previous`; a product listed meanwhile never shifts the pages. The `relevance` "
            "order (the default when `q` is given) and the price orders are computed per request, so they are "
            "paged by number (`page`, up to 200) with the same `{next, previous, results}` envelope; there is no "
            "total count (see `/products/facets` for counts)."
        ),
        filters=False,
        parameters=[*FILTER_PARAMETERS, SORT_PARAMETER],
        responses={200: OutputSerializer(many=True), **_errors({403: READ_403})},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ProductFacetsApi(APIView):
    ParamsSerializer = CatalogueParamsSerializer

    class OutputSerializer(serializers.Serializer):
        board = serializers.DictField(child=serializers.IntegerField(), help_text="Products per board code.")
        category = serializers.DictField(child=serializers.IntegerField(), help_text="Products per category code.")
        classification = serializers.DictField(child=serializers.IntegerField())
        provider_country = serializers.DictField(child=serializers.IntegerField())
        contains_personal_info = serializers.DictField(
            child=serializers.IntegerField(), help_text='Keys "true" and "false".'
        )
        delivery_mode = serializers.DictField(child=serializers.IntegerField())
        currency = serializers.DictField(child=serializers.IntegerField(), help_text="Products with a plan in it.")

    filter_backends = [CatalogueFilterBackend]
    filterset_class = CatalogueFilter

    def get_queryset(self) -> Any:
        # django-filter's backend asks the view for its queryset's model.
        return product_list_catalogue(user=self.request.user)

    @extend_schema(
        operation_id="products_facets",
        summary="Facet counts of a catalogue search",
        description="How many of the products the same filters select have each facet value.",
        filters=False,
        parameters=FILTER_PARAMETERS,
        responses={200: OutputSerializer, **_errors({403: READ_403})},
    )
    def get(self, request: Request) -> Response:
        backend = CatalogueFilterBackend()
        queryset = backend.filter_queryset(request, self.get_queryset(), self)
        facets = catalogue_facets(queryset=queryset, firm_id=user_firm_id(request.user))
        return Response(ProductFacetsApi.OutputSerializer(facets).data)


class RevisionParamsSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        required=False,
        help_text="The revision's number. The provider (and listing reviewers) may read any revision; others "
        "always get the listed one (another number is not found).",
    )


class ProductDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="product.id")
        board = serializers.ChoiceField(source="product.board.code", choices=Board.Code.choices)
        provider = ProviderOutputSerializer(source="product.provider")
        listing_status = serializers.ChoiceField(source="product.listing_status", choices=ListingStatus.choices)
        certificate_number = serializers.CharField(
            source="product.certificate_number", allow_null=True, help_text="Null until first listed."
        )
        listed_at = serializers.DateTimeField(
            source="product.listed_at", allow_null=True, help_text="When first listed; null until then."
        )
        revision = RevisionOutputSerializer(help_text="The revision shown: the listed one unless asked otherwise.")
        sample_url = serializers.URLField(allow_null=True, help_text="The shown revision's sample; null without one.")
        dataset = DatasetSummarySerializer(
            allow_null=True, help_text="The shown revision's dataset once checked valid; null before (or without one)."
        )
        plans = PlanOutputSerializer(many=True)
        open_revision = RevisionSummarySerializer(
            allow_null=True, help_text="The provider's draft or revision in review; null for other callers."
        )
        revisions = RevisionSummarySerializer(
            many=True, allow_null=True, help_text="The provider's revision history; null for other callers."
        )

    @extend_schema(
        operation_id="products_get",
        summary="One product",
        parameters=[RevisionParamsSerializer],
        responses={200: OutputSerializer, **_errors({403: READ_403, 404: NOT_FOUND})},
    )
    def get(self, request: Request, pk: int) -> Response:
        params = RevisionParamsSerializer(data=_query(request))
        params.is_valid(raise_exception=True)
        product = product_get_for_user(user=request.user, pk=pk)
        data = _detail_data(request, product, params.validated_data.get("revision"))
        return Response(ProductDetailApi.OutputSerializer(data).data)


OCTET_STREAM = "application/octet-stream"
SAMPLE_200 = "The sample file, as an attachment."


class ProductSampleApi(APIView):
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        operation_id="products_sample_download",
        summary="Download a product's sample",
        description="The sample file of the displayed revision, as an attachment named `product-<id>-r<n>.csv` or "
        "`.json`: `text/csv` or `application/json` as it was uploaded, or `application/octet-stream` when the "
        "`Accept` header prefers that. Read the body as bytes whatever the media type.",
        parameters=[RevisionParamsSerializer],
        responses={
            (200, OCTET_STREAM): OpenApiResponse(OpenApiTypes.BINARY, description=SAMPLE_200),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description=SAMPLE_200),
            # A JSON sample is a list of objects, one per row (listings.validation.parse_sample).
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object", "additionalProperties": True}}, description=SAMPLE_200
            ),
            **_errors({403: READ_403, 404: f"{NOT_FOUND} Also when the revision shown has no sample."}),
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        params = RevisionParamsSerializer(data=_query(request))
        params.is_valid(raise_exception=True)
        product = product_get_for_user(user=request.user, pk=pk)
        revision = revision_for_display(
            user=request.user, product=product, number=params.validated_data.get("revision")
        )
        response = file_response(revision.sample, filename_stem=f"product-{product.pk}-r{revision.number}")
        real = response["Content-Type"].split(";", 1)[0]
        if request._request.get_preferred_type([real, OCTET_STREAM]) == OCTET_STREAM:
            response["Content-Type"] = OCTET_STREAM
        return response


class ProductPlanListApi(APIView):
    @extend_schema(
        operation_id="products_plans_list",
        summary="The plans of a product",
        description="Active public plans and the private offers made to the caller's firm; the provider sees all "
        "of its plans, retired ones and private offers included.",
        responses={200: PlanOutputSerializer(many=True), **_errors({403: READ_403, 404: NOT_FOUND})},
    )
    def get(self, request: Request, pk: int) -> Response:
        product = product_get_for_user(user=request.user, pk=pk)
        return Response(PlanOutputSerializer(plans_for_user(user=request.user, product=product), many=True).data)


# --- Providers ----------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "maxLength": 50, "pattern": CATEGORY_CODE})
class CategoryField(serializers.SlugRelatedField):
    """A category by its code: one that is no slug does not fit the schema (400, and never reaches the database,
    which may refuse to compare it); one that names no category breaks a rule (422)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=Category.objects.all(), **kwargs)

    def to_internal_value(self, data: Any) -> Category:
        if not isinstance(data, str) or len(data) > 50 or not re.fullmatch(CATEGORY_CODE, data, re.ASCII):
            self.fail("invalid")
        return super().to_internal_value(data)


def _countries(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=list(countries)), max_length=validation.MAX_COUNTRIES, **kwargs
    )


class ContentInputSerializer(OnePassSerializer):
    """A revision's content: its shape, then (OnePassSerializer) the rules listings.validation states for each
    field and between fields, as the services check them again on saving. The context may give the draft the
    content is applied to (`base`), or say that there is none to check the rules between fields on (`between`)."""

    title_en = _text(max_length=200)
    title_zh = _text(max_length=200)
    summary_en = _text(max_length=500)
    summary_zh = _text(max_length=500)
    description_en = _text(max_length=20000, blank=True, required=False)
    description_zh = _text(max_length=20000, blank=True, required=False)
    category = CategoryField(help_text="A category's `code` (from `/categories`).")
    tags = serializers.ListField(
        child=_text(max_length=validation.MAX_TAG_LENGTH),
        max_length=validation.MAX_TAGS,
        required=False,
        help_text="Repeated tags (ignoring case) are kept once.",
    )
    classification = serializers.ChoiceField(choices=Classification.choices, required=False)
    important_source = serializers.ChoiceField(
        choices=ImportantSource.choices, required=False, help_text="Why important data is important; `none` otherwise."
    )
    contains_personal_info = JsonBooleanField(required=False)
    personal_info_subjects = JsonIntegerField(min_value=0, max_value=10**15, required=False)
    sensitive_personal_info_subjects = JsonIntegerField(min_value=0, max_value=10**15, required=False)
    origin_countries = _countries(min_length=1, help_text="Where the data was collected.")
    origin_region = _text(max_length=200, blank=True, required=False)
    export_destinations = _countries(
        required=False, help_text="Where buyers may receive it; empty (the default) means every country."
    )
    coverage_start = JsonDateField(allow_null=True, required=False)
    coverage_end = JsonDateField(allow_null=True, required=False)
    coverage_geography = _text(max_length=200, blank=True, required=False)
    update_frequency = serializers.ChoiceField(choices=UpdateFrequency.choices, required=False)
    volume = _text(max_length=200, blank=True, required=False)
    delivery_modes = serializers.ListField(
        child=serializers.ChoiceField(choices=DeliveryMode.choices), min_length=1, max_length=len(DeliveryMode)
    )
    # A ListField of the serializer, not `many=True`: the schema then states the bounds (minItems, maxItems).
    dictionary = serializers.ListField(
        child=DictionaryFieldSerializer(),
        min_length=1,
        max_length=validation.MAX_FIELDS,
        help_text="The fields of the data, as a sample's columns must name them.",
    )
    licence_en = _text(max_length=20000)
    licence_zh = _text(max_length=20000)
    licence_terms = LicenceTermsSerializer()
    requires_approval = JsonBooleanField(required=False)
    sandbox_min_individuals = JsonIntegerField(
        min_value=1,
        max_value=settings.SANDBOX_MAX_MIN_INDIVIDUALS,
        required=False,
        help_text=f"Sandbox delivery: each output row aggregates at least this many distinct individuals; at least "
        f"{settings.SANDBOX_MIN_INDIVIDUALS} (the exchange's minimum, the default).",
    )

    def rule_errors(self, valid: dict[str, Any], refused: set[str]) -> validation.Errors:
        content = _content({k: v for k, v in valid.items() if k in services.EDITABLE_FIELDS})
        _cleaned, errors = validation.content_check(
            content, base=self.context.get("base"), refused=refused, between=self.context.get("between", True)
        )
        return errors


def _content(validated: dict[str, Any]) -> dict[str, Any]:
    """The service takes plain values: a dictionary's fields and the licence terms as dicts."""
    content = dict(validated)
    if "dictionary" in content:
        content["dictionary"] = [dict(field) for field in content["dictionary"]]
    if "licence_terms" in content:
        content["licence_terms"] = dict(content["licence_terms"])
    return content


PRODUCT_EXAMPLE = OpenApiExample(
    "A product on the international board",
    request_only=True,
    value={
        "board": "international",
        "title_en": "Port congestion index",
        "title_zh": "港口拥堵指数",
        "summary_en": "Daily congestion at the world's main ports.",
        "summary_zh": "全球主要港口每日拥堵情况。",
        "category": "supply-chain",
        "tags": ["ports"],
        "origin_countries": ["CN", "SG"],
        "delivery_modes": ["api"],
        "dictionary": [
            {"name": "port", "type": "string", "description": "UN/LOCODE"},
            {"name": "day", "type": "date"},
            {"name": "waiting_ships", "type": "integer"},
        ],
        "licence_en": "Internal use only.",
        "licence_zh": "仅限内部使用。",
        "licence_terms": {"purposes": ["market research"], "territories": ["worldwide"], "duration_months": 12},
    },
)
PLAN_EXAMPLE = OpenApiExample(
    "A monthly subscription",
    request_only=True,
    value={"name_en": "Monthly", "kind": "subscription", "period": "month", "currency": "CNY", "amount": "2500.00"},
)


class ProductCreateApi(APIView):
    class InputSerializer(ContentInputSerializer):
        board = serializers.ChoiceField(choices=Board.Code.choices, help_text="The board to list the product on.")

        def validate_board(self, value: str) -> Board:
            board = Board.objects.filter(code=value).first()
            if board is None:  # a board of the enum that this exchange does not run
                raise serializers.ValidationError("This board is not open.", code="board_unavailable")
            return board

    @idempotent(required=False)
    @extend_schema(
        operation_id="products_create",
        summary="Create a product (provider)",
        description="A new product owned by the caller's firm, with its first draft revision. Then upload a "
        "sample, add a price plan and submit it for review. Every field's errors come in one answer.",
        request=InputSerializer,
        examples=[PRODUCT_EXAMPLE],
        responses={
            201: ProductDetailApi.OutputSerializer,
            **_errors(
                {
                    403: f"{WRITE_403} Also `not_allowed` when the caller's firm may not trade on the board.",
                    422: CONTENT_422,
                }
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = ProductCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        content = _content(serializer.validated_data)
        product = services.product_create(actor=request.user, board=content.pop("board"), **content)
        product = product_get_for_user(user=request.user, pk=product.pk)
        data = ProductDetailApi.OutputSerializer(_detail_data(request, product)).data
        return Response(data, status=status.HTTP_201_CREATED)


class ProductUpdateApi(APIView):
    class InputSerializer(ContentInputSerializer):
        """Any of the content's fields; each one given replaces the draft's (the dictionary and the licence terms
        whole, so their own fields are required as on creation)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Not DRF's partial mode, which would also make the nested objects' fields optional.
            for field in self.fields.values():
                field.required = False

    @extend_schema(
        operation_id="products_update",
        summary="Edit a product's draft (provider)",
        description="Changes the fields given in the draft revision. A listed product is changed through a new "
        "draft (`POST /products/{id}/draft`). Changing the dictionary removes a sample checked against the old "
        "one. The rules between fields are checked on the draft with the changes applied; every field's errors "
        "come in one answer.",
        request=InputSerializer,
        responses={
            200: ProductDetailApi.OutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: the product has no draft (it is in review, or listed: start a new "
                    "draft first).",
                    422: CONTENT_422,
                }
            ),
        },
    )
    def patch(self, request: AuthenticatedRequest, pk: int) -> Response:
        product = _own_product(request.user, pk)
        draft = revision_draft(product=product)
        serializer = ProductUpdateApi.InputSerializer(
            data=request.data, context={"base": draft, "between": draft is not None}
        )
        serializer.is_valid(raise_exception=True)
        revision = services.revision_update(product=product, actor=request.user, **_content(serializer.validated_data))
        return _product_response(request, pk, revision.number)


class ProductSampleUploadApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(ClosedObject):
        sample = serializers.FileField(
            allow_empty_file=True,  # an empty file is refused for its contents (422), as any other bad file
            help_text="A .csv (with a header row) or .json (a list of objects) file.",
        )

    @extend_schema(
        operation_id="products_sample_upload",
        summary="Upload the draft's sample (provider)",
        description="Checked against the draft's dictionary: the columns must be exactly its fields and every "
        f"value must fit its type. At most {settings.LISTING_SAMPLE_MAX_BYTES // 1024} KiB and "
        f"{settings.LISTING_SAMPLE_MAX_ROWS} rows.",
        request={"multipart/form-data": InputSerializer},
        responses={
            200: ProductDetailApi.OutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: the product has no draft.",
                    422: "`validation_error`: the file is not a sample of the draft's dictionary (its type, "
                    "encoding, size, columns or values), with the reasons under `details.sample`.",
                }
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        product = _own_product(request.user, pk)
        serializer = ProductSampleUploadApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["sample"]
        # One byte past the limit is enough for the service to refuse an oversize file.
        content = upload.read(settings.LISTING_SAMPLE_MAX_BYTES + 1)
        revision = services.revision_set_sample(product=product, actor=request.user, name=upload.name, content=content)
        return _product_response(request, pk, revision.number)


class DatasetOutputSerializer(serializers.Serializer):
    """A revision's dataset and its check, for its provider."""

    revision = serializers.IntegerField(source="revision.number")
    format = serializers.ChoiceField(choices=Dataset.Format.choices)
    original_name = serializers.CharField()
    size = serializers.IntegerField(help_text="In bytes, as uploaded.")
    status = serializers.ChoiceField(
        choices=Dataset.Status.choices,
        help_text="`pending` and `validating` while the check runs (poll this endpoint); `valid` or `invalid` after.",
    )
    bytes_read = serializers.IntegerField(help_text="How much of the file the check has read.")
    progress_percent = serializers.IntegerField(min_value=0, max_value=100)
    row_count = serializers.IntegerField(allow_null=True, help_text="Once valid; null before.")
    sha256 = serializers.CharField(help_text="The file's SHA-256 once read whole; empty before.")
    first_errors = serializers.ListField(
        source="error_messages",
        child=serializers.CharField(),
        help_text=f"The first {settings.LISTING_DATASET_ERRORS_KEPT} errors found, by line (text) or row (Parquet).",
    )
    error_count = serializers.IntegerField(help_text="How many errors were found in all.")
    uploaded_at = serializers.DateTimeField()
    validated_at = serializers.DateTimeField(allow_null=True)


DATASET_404 = f"{NOT_FOUND} Only the provider's members read a dataset's check; also when the revision has none."


class ProductDatasetApi(APIView):
    @extend_schema(
        operation_id="products_dataset_get",
        summary="The dataset of a revision and its check (provider)",
        description="The dataset of the revision in progress (or the latest one), or of `revision`: its status "
        "and progress while it is checked, then its rows, size and SHA-256, or the first errors found.",
        parameters=[RevisionParamsSerializer],
        responses={200: DatasetOutputSerializer, **_errors({403: READ_403, 404: DATASET_404})},
    )
    def get(self, request: Request, pk: int) -> Response:
        params = RevisionParamsSerializer(data=_query(request))
        params.is_valid(raise_exception=True)
        product = _own_product(request.user, pk)
        number = params.validated_data.get("revision")
        revision = (
            revision_for_display(user=request.user, product=product, number=number)
            if number is not None
            else services.open_revision(product) or revision_list(product=product).first()
        )
        dataset = dataset_of(revision=revision) if revision is not None else None
        if dataset is None:
            raise Http404
        return Response(DatasetOutputSerializer(dataset).data)


class ProductDatasetUploadApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(ClosedObject):
        dataset = serializers.FileField(
            allow_empty_file=True,  # an empty file is refused for its contents (422), as any other bad file
            help_text="A .csv file (with a header row), a .jsonl file (one JSON object per line) or a .parquet file.",
        )

    @extend_schema(
        operation_id="products_dataset_upload",
        summary="Upload the draft's dataset (provider)",
        description="Stored privately and checked against the draft's dictionary by a background task, by "
        "streaming: the columns must be exactly its fields and every value must fit its type. Answers 202 with the "
        "check's status; poll `GET /products/{id}/dataset` until it is `valid` or `invalid` (an exchange without a "
        "task queue checks it before answering). A new upload replaces the draft's dataset. At most "
        f"{settings.LISTING_DATASET_MAX_BYTES // (1024 * 1024)} MiB. File, API and sandbox delivery need a valid dataset "
        "before the draft is submitted.",
        request={"multipart/form-data": InputSerializer},
        responses={
            202: DatasetOutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: the product has no draft.",
                    422: "`validation_error`: the file is no dataset this draft takes (its type, size, or a draft "
                    "without a dictionary), with the reasons under `details.dataset`. What the check finds in the "
                    "file's contents is in the answer's `errors`, not a refusal.",
                }
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        product = _own_product(request.user, pk)
        serializer = ProductDatasetUploadApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["dataset"]
        dataset = services.dataset_upload(product=product, actor=request.user, name=upload.name, file=upload)
        # The check ran already where tasks run in the process (after the upload's commit): show where it stands.
        dataset.refresh_from_db()
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_202_ACCEPTED)


def _transition(request: Request, pk: int, service: Any, status_code: int = status.HTTP_200_OK) -> Response:
    """A provider's workflow step on its own product, answered with the product as it now stands."""
    product = _own_product(request.user, pk)
    revision = service(product=product, actor=request.user)
    return _product_response(request, pk, revision.number, status_code)


def _product_response(request: Request, pk: int, number: int, status_code: int = status.HTTP_200_OK) -> Response:
    """The product as it now stands, with the revision a provider's step just changed."""
    product = product_get_for_user(user=request.user, pk=pk)
    data = ProductDetailApi.OutputSerializer(_detail_data(request, product, number)).data
    return Response(data, status=status_code)


class ProductSubmitApi(APIView):
    @extend_schema(
        operation_id="products_submit",
        summary="Submit the draft for review (provider)",
        description="The draft freezes and joins the listing reviewers' queue. It needs a sample and an active "
        "price plan (`incomplete` otherwise, with what is missing in `details.missing`), for file, API or "
        "sandbox delivery a valid dataset (`dataset_required` otherwise, with its status in "
        "`details.dataset_status`), and for sandbox delivery the provider's rules: an `identifier` field and at "
        "least one field with a `sandbox` role (`sandbox_rules_required` otherwise, `details.missing`).",
        request=None,
        responses={
            200: ProductDetailApi.OutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: the product has no draft; `incomplete`: the draft has no sample "
                    "or the product no active price plan yet; `dataset_required`: file, API or sandbox delivery and "
                    "no valid dataset yet (none, still being checked, or invalid); `sandbox_rules_required`: "
                    "sandbox delivery without an identifier field or a measure or dimension.",
                    422: "`validation_error`: the draft breaks a content rule that has come to apply since it was "
                    "saved (e.g. its category is no longer in use).",
                }
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        return _transition(request, pk, services.product_submit)


class ProductWithdrawApi(APIView):
    @extend_schema(
        operation_id="products_withdraw",
        summary="Withdraw a submitted revision (provider)",
        description="Before a reviewer has taken it up. Start a new draft to change and submit it again.",
        request=None,
        responses={
            200: ProductDetailApi.OutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: the product has no submitted revision (none, or already in review).",
                }
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        return _transition(request, pk, services.product_withdraw)


class ProductDraftCreateApi(APIView):
    @idempotent(required=False)
    @extend_schema(
        operation_id="products_draft_start",
        summary="Start a new draft (provider)",
        description="A new draft revision copied from the latest one: to change a listed product (the listed "
        "revision stays on sale meanwhile), or to try again after a rejection or a withdrawal.",
        request=None,
        responses={
            201: ProductDetailApi.OutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: a revision is already in progress, or the product is delisted.",
                }
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        return _transition(request, pk, services.revision_create_draft, status_code=status.HTTP_201_CREATED)


class PlanCreateApi(APIView):
    class InputSerializer(OnePassSerializer):
        name_en = _text(max_length=100)
        name_zh = _text(max_length=100, blank=True, required=False)
        kind = serializers.ChoiceField(choices=PricePlan.Kind.choices)
        period = serializers.ChoiceField(
            choices=PricePlan.Period.choices,
            allow_blank=True,
            required=False,
            help_text="Required for subscriptions and metered plans; empty (the default) for one-off plans.",
        )
        currency = serializers.ChoiceField(
            choices=CURRENCY_CHOICES, help_text="One of the currencies the product's board settles in."
        )
        amount = MoneyInputField(
            whole_digits=PRICE_DIGITS,
            decimal_places=2,
            help_text="The one-off price, the fee per period, or a metered plan's base fee per period (which may be "
            f"0); at most {settings.LISTING_MAX_PRICE}.",
        )
        included_calls = JsonIntegerField(
            min_value=0,
            max_value=2**31 - 1,
            allow_null=True,
            required=False,
            help_text="Metered plans only: the calls a period includes.",
        )
        unit_price = MoneyInputField(
            whole_digits=PRICE_DIGITS,
            decimal_places=6,
            allow_null=True,
            required=False,
            help_text="Metered plans only: the price of each call beyond those included.",
        )
        buyer_code = _text(
            pattern=r"^([0-9A-Za-z]{18}|[0-9A-Za-z]{20})$",
            max_length=20,
            blank=True,
            required=False,
            help_text="For a private offer: the buyer firm's Unified Social Credit Code (18 characters) or LEI "
            "(20 characters); only that firm sees the plan. One refusal (422, field `buyer_code`) whether no firm "
            "has the code or the firm may not trade on the product's board.",
        )

        def rule_errors(self, valid: dict[str, Any], refused: set[str]) -> validation.Errors:
            # Not the buyer code's rule: whether a code names a firm that may trade here is told only within the
            # firm's daily bound on private offers, which the service checks first (under its lock).
            fields = {name: value for name, value in valid.items() if name != "buyer_code"}
            plan = PricePlan(product=self.context["product"], **fields)
            return validation.plan_rule_errors(self.context["product"], plan, refused={*refused, "buyer_code"})

    @idempotent(required=False)
    @extend_schema(
        operation_id="products_plans_create",
        summary="Add a price plan (provider)",
        description="Every field's errors come in one answer: those of the schema, and the rules between them "
        "(a one-off plan has no period, only metered plans have included calls and a unit price...).",
        request=InputSerializer,
        examples=[PLAN_EXAMPLE],
        responses={
            201: PlanOutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: NOT_FOUND,
                    409: "`invalid_transition`: the product is delisted.",
                    422: "`validation_error`: the plan fits the schema but breaks a rule (a currency the board "
                    "does not settle in, a price of zero, a period on a one-off plan, a buyer code refused...), "
                    "every field's messages at once; `private_offer_limit`: the firm has made as many private "
                    "offers in the last 24 hours as it may.",
                }
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        product = _own_product(request.user, pk)
        serializer = PlanCreateApi.InputSerializer(data=request.data, context={"product": product})
        serializer.is_valid(raise_exception=True)
        plan = services.plan_create(product=product, actor=request.user, **serializer.validated_data)
        return Response(PlanOutputSerializer(plan).data, status=status.HTTP_201_CREATED)


class PlanRetireApi(APIView):
    @extend_schema(
        operation_id="products_plans_retire",
        summary="Retire a price plan (provider)",
        description="Nobody can buy it any more; orders already placed keep their terms.",
        request=None,
        responses={
            200: PlanOutputSerializer,
            **_errors(
                {
                    403: WRITE_403,
                    404: f"{NOT_FOUND} Also for a plan that is not one of the product's.",
                    409: "`invalid_transition`: the plan is already retired.",
                }
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int, plan_id: int) -> Response:
        product = _own_product(request.user, pk)
        plan = next((p for p in plans_for_user(user=request.user, product=product) if p.pk == plan_id), None)
        if plan is None:
            raise Http404
        plan = services.plan_retire(plan=plan, actor=request.user)
        return Response(PlanOutputSerializer(plan).data)


class MyProductListApi(ListAPIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        board = serializers.ChoiceField(source="board.code", choices=Board.Code.choices)
        listing_status = serializers.ChoiceField(choices=ListingStatus.choices)
        certificate_number = serializers.CharField(allow_null=True, help_text="Null until first listed.")
        listed_at = serializers.DateTimeField(allow_null=True, help_text="When first listed; null until then.")
        updated_at = serializers.DateTimeField()
        title_en = serializers.SerializerMethodField(help_text="The title of the latest revision.")
        title_zh = serializers.SerializerMethodField()
        listed_revision = serializers.IntegerField(
            source="listed_revision.number", allow_null=True, help_text="The listed revision's number, if any."
        )
        open_revision = serializers.SerializerMethodField()
        plans = PlanOutputSerializer(source="visible_plans", many=True, help_text="The active public plans.")

        def _latest(self, product: DataProduct) -> Revision | None:
            return product.open_revisions[0] if product.open_revisions else product.listed_revision  # type: ignore[attr-defined]  # Prefetch(to_attr=) in the selector

        def get_title_en(self, product: DataProduct) -> str:
            latest = self._latest(product)
            return latest.title_en if latest else ""

        def get_title_zh(self, product: DataProduct) -> str:
            latest = self._latest(product)
            return latest.title_zh if latest else ""

        @extend_schema_field(
            RevisionSummarySerializer(allow_null=True, help_text="The draft or revision in review; null if none.")
        )
        def get_open_revision(self, product: DataProduct) -> dict[str, Any] | None:
            if not product.open_revisions:  # type: ignore[attr-defined]  # Prefetch(to_attr=) in the selector
                return None
            return RevisionSummarySerializer(product.open_revisions[0]).data  # type: ignore[attr-defined]  # as above

    serializer_class = OutputSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return product_list_for_provider(user=self.request.user)

    @extend_schema(
        operation_id="my_products_list",
        summary="The caller's firm's products (provider)",
        description="Every product of the firm in every state, newest first, with its open revision.",
        responses={200: OutputSerializer(many=True), **_errors({403: READ_403})},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
