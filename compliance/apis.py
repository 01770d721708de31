"""The compliance API: the rules engine's decision (for plain inputs, or for a trade the exchange gathers the
inputs of), a firm's evidence on file, and its yearly export counters.

One class per operation (`<Entity><Action>Api`). Reads go through compliance.selectors, which scope every
filing and counter to the caller's own firm; writes go through compliance.services, which decide who may
file. Serializers here check the shape of a request only; the services' ValidationErrors come back as 400s
with details per field, their NotAllowed as 403, and another firm's filing as 404, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.conf import settings
from django.http import FileResponse, Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.api import JsonErrorsOnly, error_responses
from exchange.exceptions import ApplicationError, NotAllowed
from exchange.files import file_response
from exchange.models import ApiKey, MemberFirm
from exchange.pagination import IdCursorPagination
from exchange.selectors import user_firm, user_firm_id
from exchange.types import AuthenticatedRequest
from listings.models import DataProduct
from listings.selectors import product_get_for_user, product_list_for_provider

from . import selectors, services
from .calendar import SHANGHAI
from .forms import read_capped
from .models import EvidenceKind, Filing
from .policy import policy_from_settings
from .rules import InvalidInput, assess
from .selectors import counter_for_firm, filing_get_for_user, filing_list_for_firm, judicial_authorities
from .services.filings import EARLIEST as FILING_EARLIEST
from .services.filings import LATEST as FILING_LATEST

# The largest id a database integer column holds: past it an id is malformed, not merely unknown.
MAX_ID = 2**63 - 1

EXAMPLE_INPUT = {
    "product": {"classification": "general", "origin": "cn", "personal_info_subjects": 150000},
    "exporter": {"country": "CN", "ytd_personal_info_subjects": 0},
    "trade": {"buyer_country": "SG", "delivery": "file"},
    "as_of": "2026-11-24",
}
EXAMPLE_PRECHECK = {"product": 42, "delivery": "file", "as_of": "2026-11-24"}


ERRORS = {
    403: "Not allowed: `no_firm` (the caller is not a member of a firm), `not_allowed` (the caller's role), "
    "`insufficient_scope` (an API key without `trade`).",
    404: "No such record, or one of another firm (the two are not told apart).",
    409: "`invalid_transition`: the filing is not in a state that allows this.",
}


def _errors(*codes: int) -> dict[int, Any]:
    return error_responses(ERRORS, *codes)


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


class IdField(serializers.IntegerField):
    """A record's id: a JSON integer (or, in a form, its digits). Never a float, a boolean or a word."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, (bool, float)) or (isinstance(data, str) and not data.strip().isdigit()):
            self.fail("invalid")
        return super().to_internal_value(data)


class DayField(serializers.DateField):
    """A date within the years the exchange deals in. Validity periods and PRC working days are computed from
    these dates; a year near 9999 would overflow that arithmetic (a 500) rather than mean anything."""

    EARLIEST, LATEST = FILING_EARLIEST, FILING_LATEST
    default_error_messages = {"out_of_range": f"A date from {FILING_EARLIEST} to {FILING_LATEST}."}

    def to_internal_value(self, value: Any) -> date:
        day = super().to_internal_value(value)
        if not self.EARLIEST <= day <= self.LATEST:
            self.fail("out_of_range")
        return day


# --- Assessments ---------------------------------------------------------------------------------------


class DecisionSerializer(serializers.Serializer):
    """The engine's decision object (docs/compliance-rules.md)."""

    decision = serializers.CharField(help_text="e.g. `exempt`, `contract_or_certification`, `prohibited`.")
    rules = serializers.ListField(child=serializers.CharField(), help_text="The rules that fired, first one first.")
    reasons = serializers.ListField(
        child=serializers.DictField(), help_text="`rule`, `text_en`, `text_zh` and the legal `source` of each."
    )
    evidence = serializers.ListField(
        child=serializers.DictField(), help_text="The evidence items required: `kind`, `validity`, `alternatives`."
    )
    rule_version = serializers.CharField()
    direction = serializers.CharField(help_text="`outbound`, `domestic`, `inbound` or `foreign`.")


class EngineInputSerializer(serializers.Serializer):
    """For the schema only: the engine's input object, which compliance.rules validates itself."""

    product = serializers.DictField(help_text="classification, origin, personal_info_subjects, …")
    exporter = serializers.DictField(help_text="country, ytd_personal_info_subjects, …")
    trade = serializers.DictField(help_text="buyer_country, delivery, buyer_type, …")
    as_of = serializers.DateField(required=False)


def _is_precheck(data: Any) -> bool:
    """A pre-check names a product by its id; the engine's own input describes the product as an object."""
    return isinstance(data, Mapping) and "product" in data and not isinstance(data.get("product"), Mapping)


class AssessmentCreateApi(APIView):
    """Decide a prospective transfer: from plain inputs, or for a trade of a listed product by the caller's
    firm, with the inputs gathered from the exchange's records. Nothing is stored, nothing is traded."""

    # Asking is reading: a read-scope key may ask, although the method is POST.
    required_scope = ApiKey.Scope.READ

    class InputSerializer(serializers.Serializer):
        product = IdField(help_text="The id of a listed product the caller may see.")
        delivery = serializers.ChoiceField(choices=list(selectors.DELIVERY), help_text="`file`, `api` or `sandbox`.")
        as_of = DayField(
            required=False, allow_null=True, help_text="The delivery date; today in Shanghai when omitted."
        )

    class OutputSerializer(DecisionSerializer):
        product = serializers.IntegerField()
        delivery = serializers.CharField()
        inputs = serializers.DictField(help_text="The engine's input object, as the exchange gathered it.")
        status = serializers.CharField(help_text="The gate's answer: `cleared`, `held` or `prohibited`.")
        cleared = serializers.BooleanField(help_text="Whether the trade would go ahead now.")
        on_file = serializers.ListField(
            child=serializers.DictField(), help_text="The required items on file and valid, with the filing of each."
        )
        missing = serializers.ListField(
            child=serializers.DictField(), help_text="The required items not on file (or not valid on the date)."
        )
        case = serializers.IntegerField(allow_null=True, help_text="The open compliance case holding the trade.")

    @extend_schema(
        summary="Decide a cross-border transfer (the rules engine, or a trade pre-check)",
        description=(
            "Two bodies are accepted, told apart by `product`.\n\n"
            "**The engine's input** (`product` is an object): the groups `product`, `exporter`, `trade` and the "
            "key `as_of` (docs/compliance-rules.md); omitted fields take their neutral value. The answer is the "
            "decision object: `decision`, the `rules` that fired, `reasons` (English, Chinese, legal source), the "
            "`evidence` required, the `rule_version` and the `direction`. It is the same decision as "
            "`manage.py assess` gives for the same input.\n\n"
            "**A trade pre-check** (`product` is the id of a listed product the caller may see): would the "
            "caller's firm, buying it for `delivery` on `as_of` (today in Shanghai by default), be cleared? The "
            "exchange gathers the inputs from its records (the product's listed revision, the exporter's counter "
            "for the year, the free trade zone lists, the buyer's screening); the answer is the decision object "
            "with the `inputs`, the gate's `status` (`cleared`, `held`, `prohibited`), the evidence `on_file` and "
            "`missing`, and the open `case` if one already holds the trade. Nothing is recorded."
        ),
        request=PolymorphicProxySerializer(
            component_name="AssessmentCreateApiBody",
            serializers=[EngineInputSerializer, InputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: PolymorphicProxySerializer(
                component_name="AssessmentCreateApiAnswer",
                serializers=[DecisionSerializer, OutputSerializer],
                resource_type_field_name=None,
            ),
            **_errors(400, 401, 403, 404),
        },
        examples=[
            OpenApiExample("150,000 individuals to Singapore", value=EXAMPLE_INPUT, request_only=True),
            OpenApiExample("Pre-check a trade of product 42", value=EXAMPLE_PRECHECK, request_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        if _is_precheck(request.data):
            return self._precheck(request)
        try:
            decision: dict[str, Any] = assess(request.data, policy_from_settings())
        except InvalidInput as exc:
            # The engine names problems by field path; a problem with the whole input has the empty path.
            raise exceptions.ValidationError(
                {(path or "non_field_errors"): [problem] for path, problem in exc.errors.items()}
            ) from None
        return Response(decision)

    def _precheck(self, request: Request) -> Response:
        firm = _caller_firm(request)
        serializer = AssessmentCreateApi.InputSerializer(data=request.data)
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
        return Response(AssessmentCreateApi.OutputSerializer(answer).data)


# --- Filings -------------------------------------------------------------------------------------------


# Plain strings rather than choice fields: "kind" and "status" name other enums in the schema already.
KIND_HELP = f"The evidence item, one of: {', '.join(EvidenceKind.values)}."


class FilingProductSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title_en = serializers.CharField(source="listed_revision.title_en", allow_null=True, default=None)
    title_zh = serializers.CharField(source="listed_revision.title_zh", allow_null=True, default=None)


class FilingPagination(IdCursorPagination):
    """Newest first, by id: a filing submitted while a client pages never shifts the pages it has not read."""


class FilingDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.CharField(help_text=KIND_HELP)
        reference = serializers.CharField()
        status = serializers.CharField(help_text=f"One of: {', '.join(Filing.Status.values)}.")
        all_products = serializers.BooleanField()
        products = FilingProductSerializer(many=True, source="products.all", help_text="Empty with all_products.")
        destinations = serializers.ListField(
            child=serializers.CharField(), help_text="ISO 3166-1 alpha-2 codes; empty means every destination."
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
        document_url = serializers.SerializerMethodField()
        submitted_at = serializers.DateTimeField()
        decided_at = serializers.DateTimeField(allow_null=True)
        decision_reason = serializers.CharField(help_text="The compliance officer's reason, e.g. for a rejection.")
        valid_today = serializers.SerializerMethodField(help_text="Whether it covers a delivery today (Shanghai).")

        def get_receipt_checked(self, filing: Filing) -> bool:
            return filing.receipt_verified_at is not None

        def get_document_url(self, filing: Filing) -> str:
            path = reverse("compliance-api:filing-document", args=[filing.pk])
            request = self.context.get("request")
            return request.build_absolute_uri(path) if request else path

        def get_valid_today(self, filing: Filing) -> bool:
            return filing.valid_on(_today())

    @extend_schema(
        summary="One of the firm's filings",
        description="Its status, dates and scope, and the compliance officer's reason once decided.",
        responses={200: OutputSerializer, **_errors(401, 404)},
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
        summary="The firm's filings",
        description="Every evidence item the caller's firm has filed, in every state, newest first, paged by "
        "cursor (follow `next`).",
        responses={200: FilingDetailApi.OutputSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


def _own_products(request: Request, ids: list[int]) -> list[DataProduct]:
    """The firm's own products by id; one answer for another firm's and for a missing one."""
    wanted = set(ids)
    products = list(product_list_for_provider(user=request.user).filter(pk__in=wanted)) if wanted else []
    unknown = wanted - {p.pk for p in products}
    if unknown:
        raise exceptions.ValidationError(
            {"products": [_("Not a product of the firm: %(ids)s.") % {"ids": ", ".join(map(str, sorted(unknown)))}]},
            code="product_unknown",
        )
    return products


def _own_filing(request: Request, pk: int | None) -> Filing | None:
    if pk is None:
        return None
    try:
        return filing_get_for_user(user=request.user, pk=pk)
    except Http404:
        raise exceptions.ValidationError({"renews": [_("Not a filing of the firm.")]}, code="filing_unknown") from None


class FilingCreateApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField(max_length=32, help_text=KIND_HELP)
        reference = serializers.CharField(max_length=100, help_text="The number the authority or issuer gave it.")
        issued_on = DayField()
        expires_on = DayField(
            required=False,
            allow_null=True,
            help_text="Fixed by law or policy for security assessments, certificates and compliance reports.",
        )
        products = serializers.ListField(
            child=IdField(), max_length=500, required=False, help_text="Ids of the firm's products it covers."
        )
        all_products = serializers.BooleanField(required=False, default=False)
        destinations = serializers.ListField(
            child=serializers.CharField(max_length=10),
            max_length=300,
            required=False,
            help_text="ISO 3166-1 alpha-2 codes; none means every destination.",
        )
        receipt_reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        receipt_filed_on = DayField(required=False, allow_null=True)
        renews = IdField(required=False, allow_null=True, help_text="An earlier filing of the firm, of the same kind.")
        buyer_firm = serializers.PrimaryKeyRelatedField(
            queryset=MemberFirm.objects.none(),
            required=False,
            allow_null=True,
            default=None,
            help_text="PRC approvals only: the member firm id of the foreign judicial or law-enforcement body whose "
            "request it answers.",
        )
        receipt_document = serializers.FileField(
            required=False, allow_null=True, default=None, help_text="The filing receipt, with its number and date."
        )

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.fields["buyer_firm"].queryset = judicial_authorities()  # type: ignore[attr-defined]  # a PrimaryKeyRelatedField

        document = serializers.FileField(
            max_length=200,
            help_text=f"{', '.join(settings.COMPLIANCE_FILING_EXTENSIONS).upper()}, at most "
            f"{settings.COMPLIANCE_FILING_MAX_BYTES // 2**20} MB.",
        )

        def validate_kind(self, value: str) -> str:
            if value not in EvidenceKind.values:
                raise serializers.ValidationError(_("Unknown kind of evidence."), code="invalid_choice")
            return value

    @extend_schema(
        summary="File an evidence item",
        description="A firm administrator or trader files a document (security assessment approval, standard "
        "contract, certificate, PIPIA report, …) for the firm's products; a compliance officer then accepts or "
        "rejects it. Send `products` once per id (or `all_products=true`) and `destinations` once per code.",
        request={"multipart/form-data": InputSerializer},
        responses={201: FilingDetailApi.OutputSerializer, **_errors(400, 401, 403)},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        firm = _caller_firm(request)
        serializer = FilingCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        upload = data.pop("document")
        # One byte past the limit is enough for the service to refuse an oversize file.
        content = upload.read(settings.COMPLIANCE_FILING_MAX_BYTES + 1)
        filing = services.filing_submit(
            exporter=firm,
            actor=request.user,
            kind=data["kind"],
            reference=data["reference"],
            issued_on=data["issued_on"],
            expires_on=data.get("expires_on"),
            products=_own_products(request, data.get("products", [])),
            all_products=data["all_products"],
            destinations=data.get("destinations", []),
            receipt_reference=data["receipt_reference"],
            receipt_filed_on=data.get("receipt_filed_on"),
            renews=_own_filing(request, data.get("renews")),
            buyer_firm=data["buyer_firm"],
            receipt_document_name=data["receipt_document"].name if data["receipt_document"] else "",
            receipt_document=read_capped(data["receipt_document"]),
            document_name=upload.name,
            document=content,
        )
        filing = filing_get_for_user(user=request.user, pk=filing.pk)
        data = FilingDetailApi.OutputSerializer(filing, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class FilingReceiptAddApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        receipt_reference = serializers.CharField(max_length=100)
        receipt_filed_on = DayField()
        document = serializers.FileField(help_text="The receipt itself: PDF, PNG or JPG.")

    @extend_schema(
        summary="Add a standard contract's filing receipt",
        description="The provincial CAC's receipt, once the firm has it (multipart, with the receipt as `document`): "
        "without it a standard contract covers no delivery after its 10th PRC working day. It counts once a "
        "compliance officer has checked it.",
        request=InputSerializer,
        responses={200: FilingDetailApi.OutputSerializer, **_errors(400, 401, 403, 404, 409)},
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
            document=upload.read(settings.COMPLIANCE_FILING_MAX_BYTES + 1),
        )
        filing = filing_get_for_user(user=request.user, pk=pk)
        return Response(FilingDetailApi.OutputSerializer(filing, context={"request": request}).data)


class FilingDocumentApi(APIView):
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        summary="Download a filing's document",
        description="The document as filed (PDF, PNG or JPEG), as an attachment.",
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, "image/png"): OpenApiTypes.BINARY,
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            **_errors(401, 404),
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        filing = filing_get_for_user(user=request.user, pk=pk)
        # The name the member gave the file is not used in the header.
        return file_response(filing.document, filename_stem=f"filing-{filing.pk}-{filing.kind}")


# --- Counters ------------------------------------------------------------------------------------------


class CounterDetailApi(APIView):
    class ParamsSerializer(serializers.Serializer):
        year = serializers.IntegerField(
            min_value=2000,
            max_value=2100,
            required=False,
            help_text="A calendar year; this year in Shanghai by default.",
        )

    class OutputSerializer(serializers.Serializer):
        year = serializers.IntegerField()
        personal_info_subjects = serializers.IntegerField(help_text="Individuals exported since 1 January.")
        sensitive_personal_info_subjects = serializers.IntegerField(
            help_text="Individuals whose sensitive personal information was exported since 1 January."
        )
        thresholds = serializers.DictField(
            child=serializers.IntegerField(), help_text="The thresholds of the Provisions (Arts 5(4), 7, 8)."
        )
        percent = serializers.DictField(
            child=serializers.IntegerField(), help_text="How far the counter is towards each threshold (0 to 100)."
        )

    @extend_schema(
        summary="The firm's yearly export counters",
        description="Individuals whose personal information the caller's firm exported in the year (Asia/Shanghai), "
        "against the thresholds that decide the mechanism a transfer needs.",
        parameters=[ParamsSerializer],
        responses={200: OutputSerializer, **_errors(400, 401, 403)},
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
