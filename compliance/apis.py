"""The compliance API: the rules engine's decision (for plain inputs, or for a trade the exchange gathers the
inputs of), a firm's evidence on file, and its yearly export counters.

One class per operation (`<Entity><Action>Api`). Reads go through compliance.selectors, which scope every
filing and counter to the caller's own firm; writes go through compliance.services, which decide who may
file. Serializers here check the shape of a request, every field at once (400); the services' rules, every
field's at once too, are 422, their NotAllowed 403, a state that does not allow the write 409, and another
firm's filing is 404, exactly like a missing one. Error details are keyed by the request's dotted field paths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from datetime import date
from typing import Any, cast

from django.conf import settings
from django.http import FileResponse, Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django_countries import countries
from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import html
from rest_framework.views import APIView

from exchange.api import ClosedObject, JsonErrorsOnly, error_responses, text_field
from exchange.exceptions import ApplicationError, NotAllowed
from exchange.files import file_response
from exchange.idempotency import idempotent
from exchange.models import ApiKey, MemberFirm
from exchange.pagination import IdCursorPagination
from exchange.selectors import user_firm, user_firm_id
from exchange.types import AuthenticatedRequest
from listings.models import Classification, DataProduct, DeliveryMode, ImportantSource
from listings.selectors import product_get_for_user, product_list_for_provider

from . import selectors, services
from .calendar import SHANGHAI
from .forms import read_capped
from .models import EvidenceKind, Filing
from .policy import policy_from_settings
from .rules import (
    BUYER_TYPES,
    DECISIONS,
    DELIVERIES,
    EXEMPTIONS,
    GROUPS,
    IMPORTANT_SOURCES,
    ISO_COUNTRIES,
    ORIGINS,
    InvalidInput,
    assess,
    parse_input,
)
from .selectors import counter_for_firm, filing_get_for_user, filing_list_for_firm, judicial_authorities
from .services.filings import EARLIEST as FILING_EARLIEST
from .services.filings import LATEST as FILING_LATEST

# The largest id a database integer column holds: past it an id is malformed, not merely unknown.
MAX_ID = 2**63 - 1

# The closed sets of the engine's vocabulary, as named enums of the schema (settings.ENUM_NAME_OVERRIDES).
# The same 249 codes as the engine's ISO_COUNTRIES (tests/compliance hold them equal), as the one CountryCode enum
# the whole schema shares with the catalogue.
COUNTRY_CODES = cast("list[tuple[str, str]]", countries)  # iterated afresh, so in the request's language
DIRECTIONS = ("outbound", "domestic", "inbound", "foreign")
GATE_STATUSES = (selectors.CLEARED, selectors.HELD, selectors.PROHIBITED)
# What a pre-check finds on file or missing: an evidence item, or a compliance officer's review of the trade.
OFFICER_REVIEW = "officer_review"
CLEARANCE_ITEM_KINDS = [*EvidenceKind.choices, (OFFICER_REVIEW, _lazy("compliance officer's review"))]

EXAMPLE_INPUT = {
    "product": {"classification": "general", "origin": "cn", "personal_info_subjects": 150000},
    "exporter": {"country": "CN", "ytd_personal_info_subjects": 0},
    "trade": {"buyer_country": "SG", "delivery": "file"},
    "as_of": "2026-11-24",
}
# Product 1 of the demo exchange (`make demo`), "China export flows by HS code", offered by API: a demo buyer
# (admin@pacific.example) is cleared for it. Ids come from the database: elsewhere, take one from products_list.
EXAMPLE_PRECHECK = {"product": 1, "delivery": "api"}

SCOPE_READ = "`insufficient_scope` (an API key without the `read` scope)"
SCOPE_TRADE = "`insufficient_scope` (an API key without the `trade` scope)"
NO_FIRM = "`no_firm` (a session of exchange staff, who belong to no firm)"
CSRF = "`permission_denied` (a session request without its CSRF token)"
FILING_404 = "No such filing, or one of another firm (the two are not told apart): `not_found`."


def _caller_firm(request: Request) -> MemberFirm:
    """The caller's firm: a session user's, or the member's an API key acts for. Staff have none."""
    firm = user_firm(request.user)
    if firm is None:
        raise NotAllowed(_("Only members of a firm have filings, counters and trades."), code="no_firm")
    return firm


def _caller_firm_id(request: Request) -> int:
    firm_id = user_firm_id(request.user)
    if firm_id is None:
        raise NotAllowed(_("Only members of a firm have filings, counters and trades."), code="no_firm")
    return firm_id


def _today() -> date:
    return timezone.localdate(timezone=SHANGHAI)


# --- Fields that accept what their schema says, and nothing else ---------------------------------------------


class FormValueMixin(serializers.Field):
    """In a form (a multipart body, a query string) an empty value is a value: refused as malformed like any
    other, never taken for an omitted field (DRF's default), so that `year=` is a 400 as `year=abc` is."""

    def get_value(self, dictionary: Any) -> Any:
        if html.is_html_input(dictionary) and dictionary.get(self.field_name, None) == "":
            return ""
        return super().get_value(dictionary)


def json_integer(value: Any) -> Any:
    """A JSON number with no fraction as the integer it is (JSON Schema's `integer` takes 42.0 for 42);
    anything else as it came (a boolean is no number here)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


class IdField(serializers.IntegerField):
    """A record's id in a JSON body: a JSON integer. Never a fraction, a boolean, a string or a word."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        data = json_integer(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# An integer as a form (a multipart part, a query string) spells it: digits, with a sign or a zero fraction
# ("2026.0" is the integer 2026 to JSON Schema), and nothing around them.
FORM_INTEGER = re.compile(r"-?[0-9]+(\.0*)?")


class FormIntegerField(FormValueMixin, serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, (int, str)) or not FORM_INTEGER.fullmatch(str(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class FormIdField(FormIntegerField):
    """A record's id in a form."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


class FormBooleanField(FormValueMixin, serializers.BooleanField):
    """A boolean in a form: `true` or `false` (as generated clients also send `True` and `False`)."""

    WORDS = {"true": True, "false": False, "True": True, "False": False}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and data in self.WORDS:
            return self.WORDS[data]
        self.fail("invalid", input=data)
        raise AssertionError  # fail() raises


class FormChoiceField(FormValueMixin, serializers.ChoiceField):
    pass


# YYYY-MM-DD from 2000-01-01 to 2100-12-31, the years the exchange deals in: the schema states the bounds.
DAY_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


@extend_schema_field({"type": "string", "format": "date", "pattern": DAY_PATTERN})
class DayField(FormValueMixin, serializers.DateField):
    """A date within the years the exchange deals in, as YYYY-MM-DD. Validity periods and PRC working days are
    computed from these dates; a year near 9999 would overflow that arithmetic rather than mean anything."""

    default_error_messages = {
        "min_value": _lazy("Give a date from {first} on."),
        "max_value": _lazy("Give a date up to {last}."),
    }

    def to_internal_value(self, value: Any) -> date:
        # Django also reads "20260601" and "2026-W22-1" as dates; the schema's format is YYYY-MM-DD only.
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            self.fail("invalid", format="YYYY-MM-DD")
        day = super().to_internal_value(value)
        if day < FILING_EARLIEST:
            self.fail("min_value", first=FILING_EARLIEST)
        if day > FILING_LATEST:
            self.fail("max_value", last=FILING_LATEST)
        return day


def _kind_field(value: str, help_text: str) -> serializers.Field:
    """The constant that tells the assessment's two answers apart (the schema's discriminator)."""

    @extend_schema_field({"type": "string", "const": value})
    class KindField(serializers.Field):
        def __init__(self) -> None:
            super().__init__(read_only=True, source="*", help_text=help_text)

        def to_representation(self, instance: Any) -> str:
            return value

    return KindField()


# --- Assessments: the engine's input (the schema of what compliance.rules checks itself) ----------------------


class FtzListItemSerializer(serializers.Serializer):
    id = serializers.CharField(min_length=1, trim_whitespace=False, help_text="The list item's code.")
    mechanism = serializers.ChoiceField(choices=DECISIONS, help_text="The mechanism the item requires.")


class EngineProductSerializer(ClosedObject):
    classification = serializers.ChoiceField(choices=Classification.choices, help_text="DSL Art 21 grade.")
    origin = serializers.ChoiceField(choices=ORIGINS, help_text="Where the data was collected.")
    important_source = serializers.ChoiceField(
        choices=ImportantSource.choices,
        required=False,
        help_text="Why the data is important (`none` by default); `important` data needs one other than `none`.",
    )
    personal_info_subjects = serializers.IntegerField(
        min_value=0, required=False, help_text="Individuals whose non-sensitive personal information it holds."
    )
    sensitive_personal_info_subjects = serializers.IntegerField(
        min_value=0, required=False, help_text="Individuals whose sensitive personal information it holds."
    )
    origin_regimes = serializers.ListField(
        child=serializers.CharField(min_length=1, trim_whitespace=False),
        required=False,
        help_text='Regimes of the data\'s origin, e.g. ["EU"], ["US"].',
    )
    anonymised_output = serializers.BooleanField(
        required=False, help_text="Whether a sandbox returns only anonymised results."
    )


class EngineExporterSerializer(ClosedObject):
    country = serializers.ChoiceField(choices=COUNTRY_CODES, help_text="The provider's country (ISO 3166-1 alpha-2).")
    is_ciio = serializers.BooleanField(required=False, help_text="A critical information infrastructure operator.")
    ytd_personal_info_subjects = serializers.IntegerField(
        min_value=0, required=False, help_text="Individuals exported since 1 January, before this trade."
    )
    ytd_sensitive_personal_info_subjects = serializers.IntegerField(
        min_value=0, required=False, help_text="Individuals whose sensitive data was exported since 1 January."
    )
    ftz = serializers.CharField(
        min_length=1,
        trim_whitespace=False,
        allow_null=True,
        required=False,
        help_text="The free trade zone the provider is registered in, or null.",
    )
    ftz_scenario_covered = serializers.BooleanField(
        required=False, help_text="Whether the zone's list covers the product's sector and scenario."
    )
    ftz_list_item = FtzListItemSerializer(
        allow_null=True, required=False, help_text="The matching item of the zone's list, or null."
    )


class EngineTradeSerializer(ClosedObject):
    buyer_country = serializers.ChoiceField(choices=COUNTRY_CODES, help_text="ISO 3166-1 alpha-2.")
    delivery = serializers.ChoiceField(choices=DELIVERIES, help_text="How the data reaches the buyer.")
    buyer_type = serializers.ChoiceField(choices=BUYER_TYPES, required=False)
    buyer_restricted = serializers.BooleanField(required=False, help_text="On the restricted-party list.")
    exemption_claimed = serializers.ChoiceField(choices=EXEMPTIONS, required=False)
    buyer_china_linked = serializers.BooleanField(
        allow_null=True,
        required=False,
        help_text="An ownership link to China the exchange knows of; null (the default) judges by country.",
    )


class EngineInputSerializer(ClosedObject):
    """The engine's input object (docs/compliance-rules.md). For the schema only: compliance.rules checks it."""

    product = EngineProductSerializer()
    exporter = EngineExporterSerializer(help_text="The provider.")
    trade = EngineTradeSerializer()
    as_of = serializers.DateField(help_text="The date of the decision.")


# --- Assessments: the answers ---------------------------------------------------------------------------------


class ReasonSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="The rule's id, e.g. `R15`, `A10`.")
    text_en = serializers.CharField()
    text_zh = serializers.CharField()
    source = serializers.CharField(help_text="The legal source.")  # type: ignore[assignment]  # a field (DRF's metaclass takes it out of the class), not Field.source


class EvidenceRequirementSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=EvidenceKind.choices)
    validity = serializers.CharField(help_text="How long the item counts, in words.")
    alternatives = serializers.ListField(
        child=serializers.ChoiceField(choices=EvidenceKind.choices),
        required=False,
        help_text="Items that count instead of it.",
    )
    lifts = serializers.CharField(required=False, help_text="The rule the item lifts (a PRC approval lifts R2).")
    zone = serializers.CharField(required=False, help_text="The free trade zone (its registration).")
    module = serializers.CharField(required=False, help_text="The EU standard contractual clauses' module.")


class DecisionSerializer(serializers.Serializer):
    """The engine's decision (docs/compliance-rules.md), the same as `manage.py assess` gives."""

    kind = _kind_field("decision", "`decision`: the engine's answer to its own input.")
    decision = serializers.ChoiceField(choices=DECISIONS)
    rules = serializers.ListField(child=serializers.CharField(), help_text="The rules that fired, first one first.")
    reasons = ReasonSerializer(many=True)
    evidence = EvidenceRequirementSerializer(many=True, help_text="The evidence items required.")
    rule_version = serializers.CharField()
    direction = serializers.ChoiceField(choices=DIRECTIONS)


class OnFileItemSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CLEARANCE_ITEM_KINDS, help_text="The requirement met.")
    filed_as = serializers.ChoiceField(
        choices=EvidenceKind.choices, allow_null=True, help_text="The kind of the filing that meets it."
    )
    expires_on = serializers.DateField(allow_null=True, help_text="The filing's last valid day, if it has one.")
    receipt_due_on = serializers.DateField(
        allow_null=True, help_text="A standard contract's filing receipt, still due by this day."
    )
    case = serializers.IntegerField(allow_null=True, help_text="The case an officer cleared (officer_review).")


class MissingItemSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CLEARANCE_ITEM_KINDS, help_text="The requirement not met.")
    alternatives = serializers.ListField(
        child=serializers.ChoiceField(choices=EvidenceKind.choices), help_text="Items that meet it instead."
    )


class TradePrecheckSerializer(DecisionSerializer):
    """The decision for a trade of a listed product by the caller's firm, and whether the trade would clear."""

    kind = _kind_field("trade_precheck", "`trade_precheck`: the answer to a pre-check.")
    product = serializers.IntegerField()
    delivery = serializers.ChoiceField(choices=DeliveryMode.choices)
    inputs = EngineInputSerializer(help_text="The engine's input, as the exchange gathered it from its records.")
    status = serializers.ChoiceField(choices=GATE_STATUSES, help_text="The gate's answer.")
    cleared = serializers.BooleanField(help_text="Whether the trade would go ahead now.")
    on_file = OnFileItemSerializer(many=True, help_text="The requirements met, with the filing of each.")
    missing = MissingItemSerializer(many=True, help_text="The requirements not met on the date.")
    case = serializers.IntegerField(allow_null=True, help_text="The open compliance case holding the trade.")


class TradePrecheckInputSerializer(ClosedObject):
    product = IdField(help_text="The id of a listed product the caller may see (products_list).")
    delivery = serializers.ChoiceField(choices=DeliveryMode.choices)
    as_of = DayField(required=False, allow_null=True, help_text="The delivery date; today in Shanghai when omitted.")


class AssessmentBody(PolymorphicProxySerializer):
    """The assessment's two bodies; both name a `product` (an object, or an id)."""


class AssessmentBodySchema(PolymorphicProxySerializerExtension):
    target_class = "compliance.apis.AssessmentBody"
    priority = 1

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        # Stated beside the oneOf as well, which makes the body required in the schema (drf-spectacular takes
        # a body as required when its schema requires a property).
        return {**super().map_serializer(auto_schema, direction), "required": ["product"]}


def _is_precheck(data: Any) -> bool:
    """A pre-check names a product by its id; the engine's own input describes the product as an object."""
    return isinstance(data, Mapping) and "product" in data and not isinstance(data.get("product"), Mapping)


# The engine's whole-number inputs (compliance.rules takes Python ints only): product.personal_info_subjects, ...
ENGINE_INTEGERS = frozenset(
    (group, f.name) for group, cls in GROUPS.items() for f in dataclass_fields(cls) if f.type == "int"
)


def _engine_input(raw: Any) -> Any:
    """The body as the engine reads it: its whole numbers sent as 150000.0 taken as the integers they are."""
    if not isinstance(raw, Mapping):
        return raw
    body = dict(raw)
    for group, name in ENGINE_INTEGERS:
        if isinstance(body.get(group), Mapping) and name in body[group]:
            body[group] = {**body[group], name: json_integer(body[group][name])}
    return body


def _engine_problems(raw: Any) -> dict[str, list[ErrorDetail]]:
    """What is wrong with the engine's input, by dotted path: the engine's findings, and country codes in small
    letters (the engine reads "sg" as "SG"; the schema's enum, and so the API, takes capitals only).

    Every problem is the input's shape (400) but one: important data with no source is a rule between two
    fields that the schema does not state (422)."""
    problems: dict[str, list[ErrorDetail]] = {}
    try:
        parse_input(raw)
    except InvalidInput as exc:
        for path, problem in exc.errors.items():
            problems[path or "non_field_errors"] = [ErrorDetail(problem, code="invalid")]
    if isinstance(raw, Mapping):
        for group, name in (("exporter", "country"), ("trade", "buyer_country")):
            value = raw.get(group, {}).get(name) if isinstance(raw.get(group), Mapping) else None
            if isinstance(value, str) and value != value.upper() and value.upper() in ISO_COUNTRIES:
                message = _("An ISO 3166-1 alpha-2 country code in capitals, e.g. %(code)s.") % {"code": value.upper()}
                problems[f"{group}.{name}"] = [ErrorDetail(message, code="invalid")]
        product = raw.get("product")
        if "product.important_source" in problems and isinstance(product, Mapping):
            given = product.get("important_source", "none")
            if given in IMPORTANT_SOURCES and product.get("classification") == "important":
                # The source given (or omitted) is a valid value: what is wrong is the pair.
                problem = problems["product.important_source"][0]
                problems["product.important_source"] = [ErrorDetail(problem, code="important_source_required")]
    return problems


class AssessmentCreateApi(APIView):
    """Decide a prospective transfer: from plain inputs, or for a trade of a listed product by the caller's
    firm, with the inputs gathered from the exchange's records. Nothing is stored, nothing is traded."""

    # Asking is reading: a read-scope key may ask, although the method is POST.
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        operation_id="compliance_assess",
        summary="Decide a cross-border transfer (the rules engine, or a trade pre-check)",
        description=(
            "Two bodies are accepted, told apart by `product`; the answer's `kind` says which was answered.\n\n"
            "**The engine's input** (`EngineInput`, `product` is an object): the groups `product`, `exporter` "
            "and `trade` and the date `as_of` (docs/compliance-rules.md). Six fields are required: "
            "`product.classification`, `product.origin`, `exporter.country`, `trade.buyer_country`, "
            "`trade.delivery` and `as_of`; every other field, when omitted, takes its neutral value (0, false, "
            '`"none"`, `"commercial"`, null, []). Important data needs its `important_source` (422 '
            "`validation_error` without one). The answer (`kind: decision`) is the decision object: `decision`, "
            "the `rules` that fired, `reasons` (English, Chinese, legal source), the `evidence` required, the "
            "`rule_version` and the `direction`; the same decision as `manage.py assess` gives for the same "
            "input.\n\n"
            "**A trade pre-check** (`TradePrecheck`, `product` is the id of a listed product the caller may "
            "see): would the caller's firm, buying it for `delivery` on `as_of` (today in Shanghai by default), "
            "be cleared? The exchange gathers the inputs from its records (the product's listed revision, the "
            "exporter's counter for the year, the free trade zone lists, the buyer's screening); the answer "
            "(`kind: trade_precheck`) is the decision object with the `inputs`, the gate's `status`, the "
            "requirements `on_file` and `missing`, and the open `case` if one already holds the trade. Nothing "
            "is recorded."
        ),
        request=AssessmentBody(
            component_name="Assessment",
            serializers=[EngineInputSerializer, TradePrecheckInputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: PolymorphicProxySerializer(
                component_name="AssessmentAnswer",
                serializers={"decision": DecisionSerializer, "trade_precheck": TradePrecheckSerializer},
                resource_type_field_name="kind",
            ),
            **error_responses(
                {
                    403: f"Not allowed: {SCOPE_READ}, {NO_FIRM} (a pre-check only), {CSRF}.",
                    404: "A pre-check's `product` is no product the caller may see (`not_found`).",
                    409: "A pre-check's product is not listed now, e.g. in review or public notice (`not_listed`).",
                    422: "The body fits the schema but breaks a rule it cannot state: `validation_error` (important "
                    "data without its source, in `details`), `own_product` (the firm's own product), "
                    "`delivery_not_offered` (a delivery the product does not offer, in `details.delivery`), "
                    "`destination_not_offered` (the product is not offered for delivery to the firm's country).",
                },
                403,
                404,
                409,
                422,
            ),
        },
        examples=[
            OpenApiExample(
                "150,000 individuals to Singapore",
                value=EXAMPLE_INPUT,
                request_only=True,
                description="The engine's input: a standard contract or certification is needed.",
            ),
            OpenApiExample(
                "Pre-check a trade of a listed product",
                value=EXAMPLE_PRECHECK,
                request_only=True,
                description='Product 1 is "China export flows by HS code" in a freshly seeded demo exchange '
                "(`make demo`), which a demo buyer (admin@pacific.example) is cleared for. Ids come from the "
                "database: elsewhere, take a listed product's id from `products_list`.",
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        if _is_precheck(request.data):
            return self._precheck(request)
        body = _engine_input(request.data)
        problems = _engine_problems(body)
        if problems:
            raise exceptions.ValidationError(problems)
        decision = assess(body, policy_from_settings())
        return Response(DecisionSerializer(decision).data)

    def _precheck(self, request: Request) -> Response:
        firm = _caller_firm(request)
        serializer = TradePrecheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        product = product_get_for_user(user=request.user, pk=data["product"])
        if product.provider_id == firm.pk:
            raise ApplicationError(
                _("This is the firm's own product: there is no trade to check."),
                code="own_product",
                details={"product": [_("The firm's own product.")]},
            )
        if product.listed_revision_id is None:
            raise ApplicationError(
                _("This product is not listed: there is nothing to trade yet."),
                code="not_listed",
                details={"product": [_("Not listed.")]},
                status_code=status.HTTP_409_CONFLICT,
            )
        clearance = selectors.trade_precheck(
            product=product, buyer_firm=firm, delivery=data["delivery"], as_of=data.get("as_of")
        ).for_buyer()
        answer = {
            **clearance.decision,
            **clearance.as_dict(),
            "product": product.pk,
            "delivery": data["delivery"],
            "inputs": clearance.inputs,
        }
        return Response(TradePrecheckSerializer(answer).data)


# --- Filings -------------------------------------------------------------------------------------------


class FilingProductSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title_en = serializers.CharField(source="listed_revision.title_en", allow_null=True, default=None)
    title_zh = serializers.CharField(source="listed_revision.title_zh", allow_null=True, default=None)


class FilingPagination(IdCursorPagination):
    """Newest first, by id: a filing submitted while a client pages never shifts the pages it has not read."""


# What a filing's document (and a receipt) may be, as filed and as downloaded (exchange.files serves them).
DOCUMENT_FORMATS = ", ".join(settings.COMPLIANCE_FILING_EXTENSIONS).upper()
DOCUMENT_MEDIA_TYPES = ("application/pdf", "image/png", "image/jpeg")
OCTET_STREAM = "application/octet-stream"


class FilingDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.ChoiceField(choices=EvidenceKind.choices)
        reference = serializers.CharField()
        status = serializers.ChoiceField(choices=Filing.Status.choices)
        all_products = serializers.BooleanField()
        products = FilingProductSerializer(many=True, source="products.all", help_text="Empty with all_products.")
        destinations = serializers.ListField(
            child=serializers.ChoiceField(choices=COUNTRY_CODES), help_text="Empty means every destination."
        )
        issued_on = serializers.DateField()
        expires_on = serializers.DateField(allow_null=True, help_text="The last day it covers a delivery.")
        receipt_reference = serializers.CharField(help_text="A standard contract's filing receipt number.")
        receipt_filed_on = serializers.DateField(allow_null=True)
        receipt_due_on = serializers.DateField(allow_null=True, help_text="Standard contracts: 10 PRC working days.")
        receipt_checked = serializers.SerializerMethodField(
            help_text="Whether a compliance officer has checked the filing receipt."
        )
        renews = serializers.IntegerField(source="renews_id", allow_null=True)
        document_name = serializers.CharField()
        document_url = serializers.SerializerMethodField(
            help_text="Where to download the document (compliance_filings_document_download)."
        )
        submitted_at = serializers.DateTimeField()
        decided_at = serializers.DateTimeField(allow_null=True)
        decision_reason = serializers.CharField(help_text="The compliance officer's reason, e.g. for a rejection.")
        valid_today = serializers.SerializerMethodField(help_text="Whether it covers a delivery today (Shanghai).")

        def get_receipt_checked(self, filing: Filing) -> bool:
            return filing.receipt_verified_at is not None

        @extend_schema_field(OpenApiTypes.URI)
        def get_document_url(self, filing: Filing) -> str:
            path = reverse("compliance-api:filing-document", args=[filing.pk])
            request = self.context.get("request")
            return request.build_absolute_uri(path) if request else path

        def get_valid_today(self, filing: Filing) -> bool:
            return filing.valid_on(_today())

    @extend_schema(
        operation_id="compliance_filings_get",
        summary="One of the firm's filings",
        description="Its status, dates and scope, and the compliance officer's reason once decided.",
        responses={
            200: OutputSerializer,
            **error_responses({403: f"Not allowed: {SCOPE_READ}.", 404: FILING_404}, 403, 404),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        filing = filing_get_for_user(user=request.user, pk=pk)
        return Response(FilingDetailApi.OutputSerializer(filing, context={"request": request}).data)


class FilingListApi(ListAPIView):
    serializer_class = FilingDetailApi.OutputSerializer
    pagination_class = FilingPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return filing_list_for_firm(firm_id=_caller_firm_id(self.request))

    @extend_schema(
        operation_id="compliance_filings_list",
        summary="The firm's filings",
        description="Every evidence item the caller's firm has filed, in every state, newest first, paged by "
        "cursor (follow `next`).",
        responses={
            200: FilingDetailApi.OutputSerializer(many=True),
            **error_responses({403: f"Not allowed: {SCOPE_READ}, {NO_FIRM}."}, 403),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


def _own_products(request: Request, ids: list[int]) -> tuple[list[DataProduct], list[str]]:
    """The firm's own products by id, and the problem with the ids that are not (one answer for another firm's
    and for a missing one)."""
    wanted = set(ids)
    products = list(product_list_for_provider(user=request.user).filter(pk__in=wanted)) if wanted else []
    unknown = wanted - {p.pk for p in products}
    if not unknown:
        return products, []
    return products, [_("Not a product of the firm: %(ids)s.") % {"ids": ", ".join(map(str, sorted(unknown)))}]


def _own_filing(request: Request, pk: int | None) -> tuple[Filing | None, list[str]]:
    if pk is None:
        return None, []
    try:
        return filing_get_for_user(user=request.user, pk=pk), []
    except Http404:
        return None, [_("Not a filing of the firm.")]


FILING_KINDS_WITH_FIXED_VALIDITY = "security assessments, certificates and compliance reports"


class FilingCreateApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(ClosedObject):
        kind = FormChoiceField(choices=EvidenceKind.choices)
        reference = text_field(max_length=100, help_text="The number the authority or issuer gave it.")
        issued_on = DayField(help_text="The day it was issued or took effect: today (Shanghai) at the latest.")
        expires_on = DayField(
            required=False,
            help_text="Its last valid day, from `issued_on` to 10 years from today. The law or policy fixes it "
            f"for {FILING_KINDS_WITH_FIXED_VALIDITY} (an earlier day given is kept).",
        )
        products = serializers.ListField(
            child=FormIdField(),
            max_length=500,
            required=False,
            help_text="Ids of the firm's products it covers, one part per id; or `all_products`, not both.",
        )
        all_products = FormBooleanField(required=False, default=False, help_text="It covers every product.")
        destinations = serializers.ListField(
            child=FormChoiceField(choices=COUNTRY_CODES),
            max_length=300,
            required=False,
            help_text="The countries it covers, one part per code; none means every destination.",
        )
        receipt_reference = serializers.CharField(
            max_length=100,
            required=False,
            allow_blank=True,
            default="",
            help_text="Standard contracts: the filing receipt's number, with `receipt_filed_on` and "
            "`receipt_document`.",
        )
        receipt_filed_on = DayField(
            required=False, help_text="The receipt's date, from `issued_on` to today (Shanghai)."
        )
        renews = FormIdField(required=False, help_text="An earlier filing of the firm, of the same kind.")
        buyer_firm = FormIdField(
            required=False,
            help_text="PRC approvals only (and required for them): the member firm id of the foreign judicial or "
            "law-enforcement body whose request it answers.",
        )
        receipt_document = serializers.FileField(
            required=False,
            allow_empty_file=True,
            help_text=f"The filing receipt ({DOCUMENT_FORMATS}), with its number and date.",
        )
        document = serializers.FileField(
            allow_empty_file=True,
            help_text=f"{DOCUMENT_FORMATS}, at most {settings.COMPLIANCE_FILING_MAX_BYTES // 2**20} MB; its "
            "contents must be of the format its name says.",
        )

    @idempotent(required=False)
    @extend_schema(
        operation_id="compliance_filings_create",
        summary="File an evidence item",
        description="A firm administrator or trader of a provider files a document (security assessment "
        "approval, standard contract, certificate, PIPIA report, …) for the firm's products; a compliance "
        "officer then accepts or rejects it. The body is multipart: send `products` once per id (or "
        "`all_products=true`) and `destinations` once per code. Every problem is answered at once: the "
        "body's shape first (400), then the rules about its values (422).",
        request={"multipart/form-data": InputSerializer},
        responses={
            201: FilingDetailApi.OutputSerializer,
            **error_responses(
                {
                    403: f"Not allowed: `not_allowed` (the caller is no administrator or trader of a provider), "
                    f"{SCOPE_TRADE}, {NO_FIRM}, {CSRF}.",
                    422: "`validation_error`, with every field's messages in `details`: a product or filing that "
                    "is not the firm's (`products`, `renews`), no buyer firm that is a judicial authority "
                    "(`buyer_firm`), dates out of order or in the future, a receipt of a filing other than a "
                    "standard contract or one given in part, a document whose contents are not its format, "
                    "empty, or larger than the limit (`document`, `receipt_document`).",
                },
                403,
                422,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        firm = _caller_firm(request)
        serializer = FilingCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        upload = data.pop("document")
        products, products_problem = _own_products(request, data.get("products", []))
        renews, renews_problem = _own_filing(request, data.get("renews"))
        buyer_firm = judicial_authorities().filter(pk=data["buyer_firm"]).first() if "buyer_firm" in data else None
        unresolved = {"products": products_problem, "renews": renews_problem}
        if "buyer_firm" in data and buyer_firm is None:
            unresolved["buyer_firm"] = [_("No foreign judicial or law-enforcement body has this id.")]
        receipt = data.get("receipt_document")
        filing = services.filing_submit(
            exporter=firm,
            actor=request.user,
            kind=data["kind"],
            reference=data["reference"],
            issued_on=data["issued_on"],
            expires_on=data.get("expires_on"),
            products=products,
            all_products=data["all_products"],
            destinations=data.get("destinations", []),
            receipt_reference=data["receipt_reference"],
            receipt_filed_on=data.get("receipt_filed_on"),
            renews=renews,
            buyer_firm=buyer_firm,
            receipt_document_name=receipt.name if receipt else "",
            receipt_document=read_capped(receipt),
            # One byte past the limit is enough for the service to refuse an oversize file.
            document_name=upload.name,
            document=read_capped(upload),
            unresolved={field: problem for field, problem in unresolved.items() if problem},
        )
        filing = filing_get_for_user(user=request.user, pk=filing.pk)
        data = FilingDetailApi.OutputSerializer(filing, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class FilingReceiptAddApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(ClosedObject):
        receipt_reference = text_field(max_length=100, help_text="The receipt's number.")
        receipt_filed_on = DayField(help_text="The receipt's date, from the contract's `issued_on` to today.")
        document = serializers.FileField(
            allow_empty_file=True, help_text=f"The receipt itself: {DOCUMENT_FORMATS}, of the format its name says."
        )

    @extend_schema(
        operation_id="compliance_filings_receipt_add",
        summary="Add a standard contract's filing receipt",
        description="The provincial CAC's receipt, once the firm has it (multipart, with the receipt as `document`): "
        "without it a standard contract covers no delivery after its 10th PRC working day. It counts once a "
        "compliance officer has checked it.",
        request={"multipart/form-data": InputSerializer},
        responses={
            200: FilingDetailApi.OutputSerializer,
            **error_responses(
                {
                    403: "Not allowed: `not_allowed` (the caller is no administrator or trader of the firm), "
                    f"{SCOPE_TRADE}, {CSRF}.",
                    404: FILING_404,
                    409: "The filing's state does not allow it: `invalid_transition` (the filing is rejected, "
                    "expired or revoked), `receipt_on_file` (its receipt is on file already), `stale_state` (it "
                    "was closed meanwhile).",
                    422: "`not_a_contract` (only a standard contract has a filing receipt), or "
                    "`validation_error` with every field's messages in `details`: a receipt dated before the "
                    "contract or after today (`receipt_filed_on`), a document whose contents are not its format, "
                    "empty, or larger than the limit (`document`).",
                },
                403,
                404,
                409,
                422,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        filing = filing_get_for_user(user=request.user, pk=pk)
        serializer = FilingReceiptAddApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["document"]
        services.filing_add_receipt(
            filing=filing,
            actor=request.user,
            receipt_reference=data["receipt_reference"],
            receipt_filed_on=data["receipt_filed_on"],
            document_name=upload.name,
            document=read_capped(upload),
        )
        filing = filing_get_for_user(user=request.user, pk=pk)
        return Response(FilingDetailApi.OutputSerializer(filing, context={"request": request}).data)


def _accepts_only_octet_stream(request: Request, media_type: str) -> bool:
    """Whether the client asks for `application/octet-stream` and not for the document's own type (nor any)."""
    accepted = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    family = media_type.split("/")[0] + "/*"
    return OCTET_STREAM in accepted and not {media_type, family, "*/*"} & set(accepted)


class FilingDocumentApi(APIView):
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        operation_id="compliance_filings_document_download",
        summary="Download a filing's document",
        description=f"The document as filed ({DOCUMENT_FORMATS}), as an attachment named "
        "`filing-<id>-<kind>.<extension>`, under its own media type; a client that accepts only "
        "`application/octet-stream` gets the same bytes under that type.",
        responses={(200, media_type): OpenApiTypes.BINARY for media_type in (OCTET_STREAM, *DOCUMENT_MEDIA_TYPES)}
        | error_responses({403: f"Not allowed: {SCOPE_READ}.", 404: FILING_404}, 403, 404),
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        filing = filing_get_for_user(user=request.user, pk=pk)
        # The name the member gave the file is not used in the header.
        response = file_response(filing.document, filename_stem=f"filing-{filing.pk}-{filing.kind}")
        if _accepts_only_octet_stream(request, response["Content-Type"]):
            response["Content-Type"] = OCTET_STREAM
        return response


# --- Counters ------------------------------------------------------------------------------------------


class CounterThresholdsSerializer(serializers.Serializer):
    personal_info_exempt_below = serializers.IntegerField(help_text="Provisions Art 5(4): exempt below this.")
    personal_info_security_assessment_from = serializers.IntegerField(
        help_text="Provisions Art 7: a security assessment from this many individuals."
    )
    sensitive_personal_info_security_assessment_from = serializers.IntegerField(
        help_text="Provisions Art 7: a security assessment from this many individuals' sensitive data."
    )


class CounterPercentSerializer(serializers.Serializer):
    personal_info_exempt_below = serializers.IntegerField(min_value=0, max_value=100)
    personal_info_security_assessment_from = serializers.IntegerField(min_value=0, max_value=100)
    sensitive_personal_info_security_assessment_from = serializers.IntegerField(min_value=0, max_value=100)


class CounterDetailApi(APIView):
    class ParamsSerializer(serializers.Serializer):
        year = FormIntegerField(
            min_value=FILING_EARLIEST.year,
            max_value=FILING_LATEST.year,
            required=False,
            help_text="A calendar year; this year in Shanghai by default.",
        )

    class OutputSerializer(serializers.Serializer):
        year = serializers.IntegerField()
        personal_info_subjects = serializers.IntegerField(help_text="Individuals exported since 1 January.")
        sensitive_personal_info_subjects = serializers.IntegerField(
            help_text="Individuals whose sensitive personal information was exported since 1 January."
        )
        thresholds = CounterThresholdsSerializer(help_text="The thresholds of the Provisions (Arts 5(4), 7, 8).")
        percent = CounterPercentSerializer(help_text="How far the counter is towards each threshold (0 to 100).")

    @extend_schema(
        operation_id="compliance_counters_get",
        summary="The firm's yearly export counters",
        description="Individuals whose personal information the caller's firm exported in the year (Asia/Shanghai), "
        "against the thresholds that decide the mechanism a transfer needs.",
        parameters=[ParamsSerializer],
        responses={
            200: OutputSerializer,
            **error_responses({403: f"Not allowed: {SCOPE_READ}, {NO_FIRM}."}, 403),
        },
    )
    def get(self, request: Request) -> Response:
        params = CounterDetailApi.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        firm_id = _caller_firm_id(request)
        counter = counter_for_firm(firm_id=firm_id, year=params.validated_data.get("year"))
        limits = counter.thresholds
        sensitive_key = "sensitive_personal_info_security_assessment_from"
        percent = {
            key: counter.percent(
                counter.sensitive_personal_info_subjects if key == sensitive_key else counter.personal_info_subjects,
                limit,
            )
            for key, limit in limits.items()
        }
        return Response(CounterDetailApi.OutputSerializer({**counter.as_dict(), "percent": percent}).data)
