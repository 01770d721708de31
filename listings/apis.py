"""The catalogue's API: browse and search listed products, read one, its sample and plans; providers create,
edit and submit their products and price them.

One class per operation (`<Entity><Action>Api`). Reads go through listings.selectors, which decide
visibility; writes go through listings.services, which decide who may do what. Serializers here check the
shape of a request only (types, lengths); the services' ValidationErrors come back as 400s with details per
field, their NotAllowed as 403, and a product the caller may not see as 404, exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, Http404
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from exchange.api import JsonErrorsOnly, MoneyField, error_responses
from exchange.files import file_response
from exchange.models import Board
from exchange.money import CURRENCIES
from exchange.pagination import CursorOrNumberedPagination, IdCursorPagination
from exchange.selectors import user_firm_id
from exchange.types import AuthenticatedRequest

from . import services, validation
from .filters import CatalogueFilter
from .models import (
    Category,
    Classification,
    DataProduct,
    DeliveryMode,
    FieldType,
    ImportantSource,
    PricePlan,
    Revision,
    UpdateFrequency,
)
from .selectors import (
    catalogue_facets,
    category_list,
    plans_for_user,
    product_get_for_user,
    product_get_own,
    product_is_own,
    product_list_catalogue,
    product_list_for_provider,
    revision_for_display,
    revision_list,
)

# --- Shared pieces ------------------------------------------------------------------------------------


def _own_product(user: Any, pk: int) -> DataProduct:
    """A product of the caller's firm, for writes. Anyone else's product, seen in the catalogue or not, is
    "not found": a write never tells a caller more about a product than a read would."""
    return product_get_own(user=user, pk=pk)


ERRORS = {
    403: "Not allowed: `not_allowed` (the caller's role), `insufficient_scope` (an API key without `trade`).",
    404: "No such product, or one the caller may not see (the two are not told apart).",
    409: "`invalid_transition`: the product is not in a state that allows this.",
}


def _errors(*codes: int) -> dict[int, Any]:
    return error_responses(ERRORS, *codes)


class ProviderOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    legal_name_en = serializers.CharField()
    legal_name_zh = serializers.CharField()
    country = serializers.CharField(help_text="ISO 3166-1 alpha-2 code of the country of registration.")


class PlanOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name_en = serializers.CharField()
    name_zh = serializers.CharField()
    kind = serializers.ChoiceField(choices=PricePlan.Kind.choices)
    period = serializers.CharField(help_text="`month` or `year`; empty for one-off plans.")
    currency = serializers.CharField()
    amount = MoneyField(max_digits=14, decimal_places=2, currency_source="currency")
    included_calls = serializers.IntegerField(allow_null=True)
    unit_price = MoneyField(max_digits=14, decimal_places=6, allow_null=True)
    is_private = serializers.BooleanField(help_text="A private offer, made to the caller's firm only.")
    buyer_code = serializers.CharField(
        help_text="For a private offer, the USCC or LEI it was addressed to; empty for public plans."
    )
    is_active = serializers.BooleanField()


class DictionaryFieldSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    type = serializers.CharField(max_length=20, help_text=f"One of: {', '.join(FieldType.values)}.")
    description = serializers.CharField(max_length=500, allow_blank=True, required=False)
    unit = serializers.CharField(max_length=50, allow_blank=True, required=False)
    personal = serializers.BooleanField(required=False, help_text="Holds personal information.")
    sensitive = serializers.BooleanField(required=False, help_text="Holds sensitive personal information.")


class LicenceTermsSerializer(serializers.Serializer):
    purposes = serializers.ListField(child=serializers.CharField(max_length=200), max_length=50)
    territories = serializers.ListField(
        child=serializers.CharField(max_length=20), max_length=300, help_text='ISO country codes, or ["worldwide"].'
    )
    duration_months = serializers.IntegerField(allow_null=True, required=False, help_text="1 to 120; null: no end.")
    onward_transfer = serializers.BooleanField(required=False)
    resale = serializers.BooleanField(required=False)


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
    confirmed_classification = serializers.CharField(help_text="Confirmed by the reviewer; empty until then.")
    important_source = serializers.ChoiceField(choices=ImportantSource.choices)
    contains_personal_info = serializers.BooleanField()
    personal_info_subjects = serializers.IntegerField()
    sensitive_personal_info_subjects = serializers.IntegerField()
    origin = serializers.CharField(help_text="`cn`, `foreign_only` or `mixed`, as the compliance rules take it.")
    origin_countries = serializers.ListField(child=serializers.CharField())
    origin_region = serializers.CharField()
    export_destinations = serializers.ListField(
        child=serializers.CharField(), help_text="Where buyers may receive it; empty means every country."
    )
    coverage_start = serializers.DateField(allow_null=True)
    coverage_end = serializers.DateField(allow_null=True)
    coverage_geography = serializers.CharField()
    update_frequency = serializers.ChoiceField(choices=UpdateFrequency.choices)
    volume = serializers.CharField()
    delivery_modes = serializers.ListField(child=serializers.ChoiceField(choices=DeliveryMode.choices))
    dictionary = DictionaryFieldSerializer(many=True)
    has_sample = serializers.SerializerMethodField()
    sample_preview = serializers.ListField(child=serializers.DictField(), help_text="The sample's first rows.")
    licence_en = serializers.CharField()
    licence_zh = serializers.CharField()
    licence_terms = LicenceTermsSerializer()
    requires_approval = serializers.BooleanField()
    listed_at = serializers.DateTimeField(allow_null=True)

    def get_has_sample(self, revision: Revision) -> bool:
        return bool(revision.sample)


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
    """django-filter's backend, telling the filter whose private offers count for the price filters."""

    def get_filterset_kwargs(self, request: Request, queryset: Any, view: Any) -> dict[str, Any]:
        return {**super().get_filterset_kwargs(request, queryset, view), "firm_id": user_firm_id(request.user)}


PRICE_PARAMETERS = [
    OpenApiParameter(
        name,
        OpenApiTypes.DECIMAL,
        description=f"{label} price of a visible active plan (with `currency`: in that currency), e.g. `100.00`.",
    )
    for name, label in (("price_min", "Lowest"), ("price_max", "Highest"))
]


# --- Categories ----------------------------------------------------------------------------------------


class CategoryListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Category
            fields = ["code", "name_en", "name_zh"]

    @extend_schema(responses={200: OutputSerializer(many=True), **_errors(401)}, summary="The category taxonomy")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(category_list(), many=True).data)


# --- The catalogue ------------------------------------------------------------------------------------


class ProductListApi(ListAPIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        title_en = serializers.CharField(source="listed_revision.title_en")
        title_zh = serializers.CharField(source="listed_revision.title_zh")
        summary_en = serializers.CharField(source="listed_revision.summary_en")
        summary_zh = serializers.CharField(source="listed_revision.summary_zh")
        category = serializers.CharField(source="listed_revision.category.code")
        board = serializers.CharField(source="board.code")
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
        certificate_number = serializers.CharField(allow_null=True)
        listed_at = serializers.DateTimeField(help_text="When the product was first listed.")
        plans = PlanOutputSerializer(source="visible_plans", many=True)

    serializer_class = OutputSerializer
    filter_backends = [CatalogueFilterBackend]
    filterset_class = CatalogueFilter
    pagination_class = CataloguePagination

    def get_queryset(self) -> Any:
        return product_list_catalogue(user=self.request.user)

    @extend_schema(
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
        parameters=PRICE_PARAMETERS,
        responses={200: OutputSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ProductFacetsApi(APIView):
    class OutputSerializer(serializers.Serializer):
        board = serializers.DictField(child=serializers.IntegerField(), help_text="Products per board code.")
        category = serializers.DictField(child=serializers.IntegerField())
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
        # django-filter's backend asks the view for its queryset's model; drf-spectacular for the model.
        return product_list_catalogue(user=self.request.user)

    @extend_schema(
        summary="Facet counts of a catalogue search",
        description="How many of the products the same filters select have each facet value.",
        filters=True,
        parameters=PRICE_PARAMETERS,
        responses={200: OutputSerializer, **_errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        backend = CatalogueFilterBackend()
        queryset = backend.filter_queryset(request, self.get_queryset(), self)
        facets = catalogue_facets(queryset=queryset, firm_id=user_firm_id(request.user))
        return Response(ProductFacetsApi.OutputSerializer(facets).data)


class ProductDetailApi(APIView):
    class ParamsSerializer(serializers.Serializer):
        revision = serializers.IntegerField(
            min_value=1,
            max_value=2**31 - 1,
            required=False,
            help_text="The provider (and listing reviewers) may read any revision; others always get the listed one.",
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="product.id")
        board = serializers.CharField(source="product.board.code")
        provider = ProviderOutputSerializer(source="product.provider")
        listing_status = serializers.CharField(source="product.listing_status")
        certificate_number = serializers.CharField(source="product.certificate_number", allow_null=True)
        listed_at = serializers.DateTimeField(source="product.listed_at", allow_null=True)
        revision = RevisionOutputSerializer(help_text="The revision shown: the listed one unless asked otherwise.")
        sample_url = serializers.URLField(allow_null=True)
        plans = PlanOutputSerializer(many=True)
        open_revision = RevisionSummarySerializer(
            allow_null=True, help_text="The provider's draft or revision in review; null for other callers."
        )
        revisions = RevisionSummarySerializer(
            many=True, allow_null=True, help_text="The provider's revision history; null for other callers."
        )

    @extend_schema(
        summary="One product",
        parameters=[ParamsSerializer],
        responses={200: OutputSerializer, **_errors(400, 401, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        params = ProductDetailApi.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        product = product_get_for_user(user=request.user, pk=pk)
        data = _detail_data(request, product, params.validated_data.get("revision"))
        return Response(ProductDetailApi.OutputSerializer(data).data)


class ProductSampleApi(APIView):
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        summary="Download a product's sample",
        description="The sample file (CSV or JSON) of the displayed revision, as an attachment.",
        parameters=[ProductDetailApi.ParamsSerializer],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/json"): OpenApiTypes.BINARY,
            **_errors(400, 401, 404),
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        params = ProductDetailApi.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        product = product_get_for_user(user=request.user, pk=pk)
        revision = revision_for_display(
            user=request.user, product=product, number=params.validated_data.get("revision")
        )
        return file_response(revision.sample, filename_stem=f"product-{product.pk}-r{revision.number}")


class ProductPlanListApi(APIView):
    @extend_schema(
        summary="The plans of a product",
        description="Active public plans and the private offers made to the caller's firm; the provider sees all "
        "of its plans, retired ones and private offers included.",
        responses={200: PlanOutputSerializer(many=True), **_errors(401, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        product = product_get_for_user(user=request.user, pk=pk)
        return Response(PlanOutputSerializer(plans_for_user(user=request.user, product=product), many=True).data)


# --- Providers ----------------------------------------------------------------------------------------


class ContentInputSerializer(serializers.Serializer):
    """A revision's content, by shape. What the content means is checked by listings.services."""

    title_en = serializers.CharField(max_length=200)
    title_zh = serializers.CharField(max_length=200)
    summary_en = serializers.CharField(max_length=500)
    summary_zh = serializers.CharField(max_length=500)
    description_en = serializers.CharField(max_length=20000, allow_blank=True, required=False)
    description_zh = serializers.CharField(max_length=20000, allow_blank=True, required=False)
    category = serializers.SlugRelatedField(slug_field="code", queryset=Category.objects.all())
    tags = serializers.ListField(
        child=serializers.CharField(max_length=validation.MAX_TAG_LENGTH),
        max_length=validation.MAX_TAGS,
        required=False,
    )
    classification = serializers.ChoiceField(choices=Classification.choices, required=False)
    important_source = serializers.ChoiceField(choices=ImportantSource.choices, required=False)
    contains_personal_info = serializers.BooleanField(required=False)
    personal_info_subjects = serializers.IntegerField(min_value=0, max_value=10**15, required=False)
    sensitive_personal_info_subjects = serializers.IntegerField(min_value=0, max_value=10**15, required=False)
    origin_countries = serializers.ListField(child=serializers.CharField(max_length=2), max_length=300)
    origin_region = serializers.CharField(max_length=200, allow_blank=True, required=False)
    export_destinations = serializers.ListField(
        child=serializers.CharField(max_length=2), max_length=300, required=False
    )
    coverage_start = serializers.DateField(allow_null=True, required=False)
    coverage_end = serializers.DateField(allow_null=True, required=False)
    coverage_geography = serializers.CharField(max_length=200, allow_blank=True, required=False)
    update_frequency = serializers.ChoiceField(choices=UpdateFrequency.choices, required=False)
    volume = serializers.CharField(max_length=200, allow_blank=True, required=False)
    delivery_modes = serializers.ListField(child=serializers.CharField(max_length=20), max_length=10)
    dictionary = DictionaryFieldSerializer(many=True, max_length=validation.MAX_FIELDS)  # type: ignore[call-arg]  # to the ListSerializer
    licence_en = serializers.CharField(max_length=20000)
    licence_zh = serializers.CharField(max_length=20000)
    licence_terms = LicenceTermsSerializer()
    requires_approval = serializers.BooleanField(required=False)


def _content(validated: dict[str, Any]) -> dict[str, Any]:
    """The service takes plain values: a dictionary's fields and the licence terms as dicts."""
    content = dict(validated)
    if "dictionary" in content:
        content["dictionary"] = [dict(field) for field in content["dictionary"]]
    if "licence_terms" in content:
        content["licence_terms"] = dict(content["licence_terms"])
    return content


class ProductCreateApi(APIView):
    class InputSerializer(ContentInputSerializer):
        # A string rather than a related field: the board codes' enum is named once, in the core's schema.
        board = serializers.CharField(max_length=20, help_text="The board's code: `domestic` or `international`.")

        def validate_board(self, value: str) -> Board:
            board = Board.objects.filter(code=value).first()
            if board is None:
                raise serializers.ValidationError("Unknown board.", code="invalid_choice")
            return board

    @extend_schema(
        summary="Create a product (provider)",
        description="A new product owned by the caller's firm, with its first draft revision. Then upload a "
        "sample, add a price plan and submit it for review.",
        request=InputSerializer,
        responses={201: ProductDetailApi.OutputSerializer, **_errors(400, 401, 403)},
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
        pass

    @extend_schema(
        summary="Edit a product's draft (provider)",
        description="Changes the fields given in the draft revision. A listed product is changed through a new "
        "draft (`POST /products/{id}/draft`). Changing the dictionary removes a sample checked against the old one.",
        request=InputSerializer,
        responses={200: ProductDetailApi.OutputSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def patch(self, request: AuthenticatedRequest, pk: int) -> Response:
        product = _own_product(request.user, pk)
        serializer = ProductUpdateApi.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        revision = services.revision_update(product=product, actor=request.user, **_content(serializer.validated_data))
        return _product_response(request, pk, revision.number)


class ProductSampleUploadApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        sample = serializers.FileField(
            max_length=200, help_text="A .csv (with a header row) or .json (a list of objects) file."
        )

    @extend_schema(
        summary="Upload the draft's sample (provider)",
        description="Checked against the draft's dictionary: the columns must be exactly its fields and every "
        f"value must fit its type. At most {settings.LISTING_SAMPLE_MAX_BYTES // 1024} KiB and "
        f"{settings.LISTING_SAMPLE_MAX_ROWS} rows.",
        request={"multipart/form-data": InputSerializer},
        responses={200: ProductDetailApi.OutputSerializer, **_errors(400, 401, 403, 404, 409)},
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
        summary="Submit the draft for review (provider)",
        description="The draft freezes and joins the listing reviewers' queue. It needs a sample and an active "
        "price plan (`incomplete` otherwise).",
        request=None,
        responses={200: ProductDetailApi.OutputSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        return _transition(request, pk, services.product_submit)


class ProductWithdrawApi(APIView):
    @extend_schema(
        summary="Withdraw a submitted revision (provider)",
        description="Before a reviewer has taken it up. Start a new draft to change and submit it again.",
        request=None,
        responses={200: ProductDetailApi.OutputSerializer, **_errors(401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        return _transition(request, pk, services.product_withdraw)


class ProductDraftCreateApi(APIView):
    @extend_schema(
        summary="Start a new draft (provider)",
        description="A new draft revision copied from the latest one: to change a listed product (the listed "
        "revision stays on sale meanwhile), or to try again after a rejection or a withdrawal.",
        request=None,
        responses={201: ProductDetailApi.OutputSerializer, **_errors(401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        return _transition(request, pk, services.revision_create_draft, status_code=status.HTTP_201_CREATED)


class PlanCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name_en = serializers.CharField(max_length=100)
        name_zh = serializers.CharField(max_length=100, allow_blank=True, required=False)
        kind = serializers.ChoiceField(choices=PricePlan.Kind.choices)
        period = serializers.ChoiceField(
            choices=PricePlan.Period.choices, allow_blank=True, required=False, help_text="Empty for one-off plans."
        )
        currency = serializers.ChoiceField(
            choices=list(CURRENCIES), help_text="One of the currencies the product's board settles in."
        )
        amount = MoneyField(
            max_digits=14,
            decimal_places=2,
            help_text="The one-off price, the fee per period, or a metered plan's base fee per period.",
        )
        included_calls = serializers.IntegerField(min_value=0, max_value=2**31 - 1, allow_null=True, required=False)
        unit_price = MoneyField(max_digits=14, decimal_places=6, allow_null=True, required=False)
        buyer_code = serializers.CharField(
            max_length=20,
            allow_blank=True,
            required=False,
            help_text="For a private offer: the buyer firm's Unified Social Credit Code (18 characters) or LEI "
            "(20 characters); only that firm sees the plan. One refusal (400, field `buyer_code`) whether no firm "
            "has the code or the firm may not trade on the product's board.",
        )

    @extend_schema(
        summary="Add a price plan (provider)",
        request=InputSerializer,
        responses={201: PlanOutputSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        product = _own_product(request.user, pk)
        serializer = PlanCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = services.plan_create(product=product, actor=request.user, **serializer.validated_data)
        return Response(PlanOutputSerializer(plan).data, status=status.HTTP_201_CREATED)


class PlanRetireApi(APIView):
    @extend_schema(
        summary="Retire a price plan (provider)",
        description="Nobody can buy it any more; orders already placed keep their terms.",
        request=None,
        responses={200: PlanOutputSerializer, **_errors(401, 403, 404, 409)},
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
        board = serializers.CharField(source="board.code")
        listing_status = serializers.CharField()
        certificate_number = serializers.CharField(allow_null=True)
        listed_at = serializers.DateTimeField(allow_null=True)
        updated_at = serializers.DateTimeField()
        title_en = serializers.SerializerMethodField()
        title_zh = serializers.SerializerMethodField()
        listed_revision = serializers.IntegerField(source="listed_revision.number", allow_null=True)
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

        @extend_schema_field(RevisionSummarySerializer(allow_null=True))
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
        summary="The caller's firm's products (provider)",
        description="Every product of the firm in every state, newest first, with its open revision.",
        responses={200: OutputSerializer(many=True), **_errors(401, 403)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
