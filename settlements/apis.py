"""The trading API: orders (with a quote first), access requests, balances, statement lines and withdrawals.

One class per operation (`<Entity><Action>Api`); reads go through settlements.selectors, which scope every list
and every object to the caller's firm (another firm's id answers 404, as a missing one does); writes call the
services. Money POSTs that create something (orders, withdrawals) require an `Idempotency-Key`
(exchange.idempotency); access requests take one if given.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _
from django_countries import countries
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.apis import GATE_STATUSES
from compliance.selectors import trade_precheck
from exchange.api import ClosedObject, MoneyField, MoneyInputField, error_responses, require_body, text_field
from exchange.exceptions import InvalidTransition, NotAllowed
from exchange.idempotency import idempotent
from exchange.models import ApiKey, Board, MemberFirm, Membership
from exchange.money import CURRENCY_CHOICES
from exchange.pagination import IdCursorPagination
from exchange.selectors import board_access, user_firm, user_membership
from exchange.types import AuthenticatedRequest
from listings.models import Dataset, DeliveryMode, PricePlan

from . import sandbox as sandbox_engine
from . import selectors
from .models import AccessRequest, Account, Entitlement, JournalEntry, Order, SandboxQuery, Usage, Withdrawal
from .services import access, credentials, downloads, metering, orders, withdrawals
from .services import sandbox as sandbox_service

SCOPE_READ = "`insufficient_scope` (an API key without the `read` scope)"
SCOPE_TRADE = "`insufficient_scope` (an API key without the `trade` scope)"
NO_FIRM = "`no_firm` (a session of exchange staff, who belong to no firm)"
CSRF = "`permission_denied` (a session request without its CSRF token)"
ORDER_404 = "No such order, or one of another firm (the two are not told apart): `not_found`."
REQUEST_404 = "No such access request, or one of another firm: `not_found`."
WITHDRAWAL_404 = "No such withdrawal, or one of another firm: `not_found`."
STATE_409 = "`invalid_transition`: the order's state does not allow it; `stale_state`: it changed meanwhile."
ACTING = "not_allowed` (the caller is no administrator or trader of the firm on that side)"
PLACE_403 = (
    f"Not allowed: `{ACTING}, `staff_made_key` (an API key exchange staff made), `firm_not_verified`, `board_not_tradable` (the firm is not admitted to trade on the "
    f"product's board), `own_product`, `restricted_party` (the buyer is on a restricted-party list), {SCOPE_TRADE}, {NO_FIRM}, {CSRF}."
)
PLACE_404 = "No such product, or one the caller may not see (not told apart): `not_found`."
PLACE_409 = (
    "The product's state: `not_listed`, `suspended`, `plan_retired`, `access_request_required` (its provider "
    "approves each buyer: file an access request first), `no_fee_schedule`."
)
PLACE_422 = (
    "`validation_error` (every field's messages in `details`: a plan of the product there is no such for the "
    "caller, a delivery mode it does not offer, a destination other than the buyer's country, a usage budget "
    "missing or not taken), `delivery_not_offered`, `plan_not_found`, `currency_not_held` (the firm holds no money "
    "in the plan's currency), `insufficient_funds` (`details`: needed, available), `prohibited` (the compliance "
    "rules prohibit the trade; `details`: decision, rules, reasons, missing)."
)


def _firm(request: Request) -> MemberFirm:
    firm = user_firm(request.user)
    if firm is None:
        raise NotAllowed(_("Only members of a firm trade."), code="no_firm")
    return firm


def _require_firm_made_key(request: Request) -> None:
    """Money leaves a firm's cash (an order, a withdrawal) only by its own people: through a session, or an API key
    one of the firm's members made. A key exchange staff made for a member (support) reads and lists, but does not
    spend or withdraw: a staff member with a key of their making would otherwise act with the firm's money."""
    key = request.auth
    if not isinstance(key, ApiKey):
        return
    membership = user_membership(request.user)
    made_by_its_member = (
        key.created_by_id == request.user.pk and membership is not None and membership.firm_id == key.firm_id
    ) or Membership.objects.filter(firm_id=key.firm_id, user_id=key.created_by_id).exists()
    if not made_by_its_member:
        raise NotAllowed(
            _("This API key was made by the exchange's staff: a key the firm's administrator makes moves its money."),
            code="staff_made_key",
        )


ID_PARAMETER = OpenApiParameter("id", int, OpenApiParameter.PATH)
SIDES = [("buyer", "buyer"), ("provider", "provider")]
# The schema's named enums (exchange/settings.py ENUM_NAME_OVERRIDES) need each choice set as a module constant.
ORDER_GATE = [("cleared", "cleared"), ("held", "held")]
MEMBER_ACCOUNTS = [(k, v) for k, v in Account.Kind.choices if k in Account.MEMBER_KINDS]


# --- Shared output -------------------------------------------------------------------------------------------------


class CounterpartySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="legal_name_en", help_text="Its legal name in English.")
    name_zh = serializers.CharField(source="legal_name_zh", help_text="Its legal name in Chinese, if any.")
    country = serializers.CharField(help_text="ISO 3166-1 alpha-2 code of its country of registration.")


class OrderEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField(source="created_at")
    kind = serializers.CharField(help_text="`placed`, a status reached (`released`, `delivered`...), or `note`.")
    old_status = serializers.ChoiceField(choices=Order.Status.choices, allow_blank=True, help_text="Empty if none.")
    new_status = serializers.ChoiceField(choices=Order.Status.choices, allow_blank=True, help_text="Empty if none.")
    by = serializers.SerializerMethodField(help_text="Who: a person's name, or null for the exchange's own steps.")
    details = serializers.DictField(source="data", help_text="The reason or note, when there is one.")

    def get_by(self, event: Any) -> str | None:
        return event.actor.get_full_name() if event.actor_id else None


class OrderComplianceSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ORDER_GATE, help_text="What the gate decided when the order was placed.")
    decision = serializers.CharField(help_text="The rules engine's decision (see compliance_assess).")
    rules = serializers.ListField(child=serializers.CharField(), help_text="The rules that decided it.")
    reasons = serializers.ListField(child=serializers.DictField(), help_text="Each reason with its legal source.")
    missing = serializers.ListField(
        child=serializers.DictField(), help_text="What a held order waits for (evidence kinds, an officer's review)."
    )


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField(help_text="The order's number as people quote it, e.g. `DX-00000012`.")
    status = serializers.ChoiceField(choices=Order.Status.choices)
    side = serializers.SerializerMethodField(help_text="The caller's side of the order.")
    buyer = CounterpartySerializer(source="buyer_firm")
    provider = CounterpartySerializer(source="provider_firm")
    product = serializers.IntegerField(source="product_id")
    title_en = serializers.CharField(source="snapshot.revision.title_en")
    title_zh = serializers.CharField(source="snapshot.revision.title_zh")
    revision = serializers.IntegerField(source="snapshot.revision.number", help_text="The revision bought.")
    plan = serializers.IntegerField(source="plan_id")
    plan_kind = serializers.ChoiceField(source="snapshot.plan.kind", choices=PricePlan.Kind.choices)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    price = MoneyField(max_digits=18, decimal_places=2, currency_source="currency")
    buyer_fee = serializers.SerializerMethodField(help_text="The exchange's fee to the buyer; null for the provider.")
    provider_fee = serializers.SerializerMethodField(
        help_text="The exchange's fee to the provider; null for the buyer."
    )
    usage_budget = MoneyField(
        max_digits=18, decimal_places=2, currency_source="currency", help_text="Held for a metered plan's usage."
    )
    delivery_mode = serializers.ChoiceField(choices=DeliveryMode.choices)
    intended_use = serializers.CharField()
    destination = serializers.CharField(help_text="Where the data is used: the buyer's country.")
    licence_en = serializers.CharField(source="snapshot.licence.en")
    licence_zh = serializers.CharField(source="snapshot.licence.zh")
    licence_terms = serializers.DictField(source="snapshot.licence.terms")
    compliance = OrderComplianceSerializer(source="snapshot.compliance")
    reason = serializers.CharField(help_text="Why it was cancelled, refused, disputed or refunded; else empty.")
    placed_at = serializers.DateTimeField(source="created_at")
    released_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    acceptance_due_at = serializers.DateTimeField(
        allow_null=True, help_text="When a delivered order is accepted for the buyer unless it accepts or disputes."
    )
    accepted_at = serializers.DateTimeField(allow_null=True)
    settled_at = serializers.DateTimeField(allow_null=True)
    events = OrderEventSerializer(many=True, help_text="The order's timeline, oldest first.")

    def _side(self, order: Order) -> str:
        return "buyer" if order.buyer_firm_id == self.context["firm_id"] else "provider"

    @extend_schema_field(serializers.ChoiceField(choices=SIDES))
    def get_side(self, order: Order) -> str:
        return self._side(order)

    @extend_schema_field(MoneyField(max_digits=18, decimal_places=2, allow_null=True))
    def get_buyer_fee(self, order: Order) -> str | None:
        return str(order.buyer_fee) if self._side(order) == "buyer" else None

    @extend_schema_field(MoneyField(max_digits=18, decimal_places=2, allow_null=True))
    def get_provider_fee(self, order: Order) -> str | None:
        return str(order.provider_fee) if self._side(order) == "provider" else None


def _order_data(request: Request, order: Order) -> Any:
    return OrderOutputSerializer(order, context={"firm_id": _firm(request).pk}).data


# --- Orders --------------------------------------------------------------------------------------------------------


class OrderInputSerializer(ClosedObject):
    product = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The product's id.")
    plan = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="One of the product's plans.")
    delivery_mode = serializers.ChoiceField(choices=DeliveryMode.choices, help_text="One the revision offers.")
    intended_use = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="What the firm will use the data for (kept on the order); taken from the approved access request "
        "when omitted there.",
    )
    destination = serializers.ChoiceField(
        choices=list(countries),
        required=False,
        help_text="Where the data will be used; the buyer's country of registration (the default) is the one the "
        "exchange assesses.",
    )
    usage_budget = MoneyInputField(
        whole_digits=10,
        decimal_places=2,
        required=False,
        allow_null=True,
        help_text="Metered plans only: the budget for usage held in escrow, charged as calls are made.",
    )


def _order_arguments(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "product_id": data["product"],
        "plan_id": data["plan"],
        "delivery_mode": data["delivery_mode"],
        "intended_use": data.get("intended_use", ""),
        "destination": data.get("destination", ""),
        "usage_budget": data.get("usage_budget"),
    }


class OrderQuoteApi(APIView):
    class OutputSerializer(serializers.Serializer):
        currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
        price = MoneyField(max_digits=18, decimal_places=2, currency_source="currency")
        buyer_fee = MoneyField(max_digits=18, decimal_places=2, currency_source="currency")
        usage_budget = MoneyField(max_digits=18, decimal_places=2, currency_source="currency")
        total = MoneyField(
            max_digits=18, decimal_places=2, currency_source="currency", help_text="What moves to escrow."
        )
        cash_available = MoneyField(max_digits=18, decimal_places=2, currency_source="currency")
        compliance = serializers.ChoiceField(
            choices=GATE_STATUSES,
            help_text="What the gate would decide now: cleared (released at once), held (placed, and waits for "
            "compliance), prohibited (refused).",
        )
        missing = serializers.ListField(child=serializers.DictField(), help_text="What a hold would wait for.")
        reasons = serializers.ListField(child=serializers.DictField(), help_text="The rules' reasons.")
        licence_en = serializers.CharField()
        licence_zh = serializers.CharField()
        licence_terms = serializers.DictField()

    @extend_schema(
        operation_id="orders_quote",
        summary="What an order would be (buyer)",
        description="The checks and the amounts of an order, without placing it: the price, the buyer's fee and the "
        "total that would move to escrow, the cash available, the compliance gate's verdict for the caller now, and "
        "the licence the order would bind. Nothing is written. The refusals are those of `orders_create`.",
        request=OrderInputSerializer,
        responses={
            200: OutputSerializer,
            **error_responses({403: PLACE_403, 404: PLACE_404, 409: PLACE_409, 422: PLACE_422}, 403, 404, 409, 422),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = OrderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        terms = selectors.order_terms(user=request.user, **_order_arguments(serializer.validated_data))
        verdict = trade_precheck(
            product=terms.product, buyer_firm=terms.buyer_firm, delivery=terms.delivery_mode
        ).for_buyer()
        revision = terms.revision
        data = {
            "currency": terms.currency,
            "price": terms.price,
            "buyer_fee": terms.buyer_fee,
            "usage_budget": terms.usage_budget,
            "total": terms.total,
            "cash_available": selectors.cash_available(firm_id=terms.buyer_firm.pk, currency=terms.currency),
            "compliance": verdict.status,
            "missing": verdict.missing,
            "reasons": verdict.decision.get("reasons", []),
            "licence_en": revision.licence_en,
            "licence_zh": revision.licence_zh,
            "licence_terms": revision.licence_terms,
        }
        return Response(OrderQuoteApi.OutputSerializer(data).data)


class OrderCreateApi(APIView):
    @idempotent(required=True)
    @extend_schema(
        operation_id="orders_create",
        summary="Place an order (buyer)",
        description="Moves the total (price, the buyer's fee, any usage budget) from the firm's cash to escrow and "
        "lets the compliance gate decide, in one step: cleared, the order is `released` for delivery; held, it "
        "waits in `compliance_hold` until a compliance officer clears it (then released) or refuses it (then "
        "`refused`, the escrow returned); prohibited, nothing happens and the answer is 422 `prohibited`. Requires "
        "an `Idempotency-Key`: a retry with the same key and body answers the same order, never a second one.",
        request=OrderInputSerializer,
        responses={
            201: OrderOutputSerializer,
            **error_responses({403: PLACE_403, 404: PLACE_404, 409: PLACE_409, 422: PLACE_422}, 403, 404, 409, 422),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        _require_firm_made_key(request)
        serializer = OrderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = orders.order_place(actor=request.user, **_order_arguments(serializer.validated_data))
        # The order this request placed for the caller's firm: answered as it is, with its timeline.
        order = selectors.order_with_timeline(order)
        return Response(
            _order_data(request, order),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/orders/{order.pk}"},
        )


class OrderListApi(ListAPIView):
    serializer_class = OrderOutputSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    class ParamsSerializer(ClosedObject):
        side = serializers.ChoiceField(
            choices=SIDES,
            required=False,
            help_text="Only the orders the firm placed (`buyer`) or received (`provider`); both when omitted.",
        )
        status = serializers.ChoiceField(choices=Order.Status.choices, required=False, help_text="Only this status.")

    def get_queryset(self) -> Any:
        params = OrderListApi.ParamsSerializer(
            data={k: v for k, v in self.request.query_params.items() if k in ("side", "status")}
        )
        params.is_valid(raise_exception=True)
        return selectors.order_list_for_firm(firm_id=_firm(self.request).pk, **params.validated_data)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "firm_id": _firm(self.request).pk}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None
        return self.get_paginated_response([_order_data(request, order) for order in page])

    @extend_schema(
        operation_id="orders_list",
        summary="The firm's orders",
        description="The orders the caller's firm placed or received, newest first, paged by cursor (follow `next`).",
        parameters=[ParamsSerializer],
        responses={200: OrderOutputSerializer(many=True), **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}."}, 403)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class OrderDetailApi(APIView):
    @extend_schema(
        operation_id="orders_get",
        summary="One of the firm's orders",
        description="What was bought (as it was then), its money, its compliance decision and its timeline.",
        parameters=[ID_PARAMETER],
        responses={
            200: OrderOutputSerializer,
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}.", 404: ORDER_404}, 403, 404),
        },
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        _firm(request)
        return Response(
            _order_data(request, selectors.order_get_for_firm(firm_id=_firm(request).pk, pk=pk, with_events=True))
        )


class ReasonInputSerializer(ClosedObject):
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", help_text="Why; optional."
    )


class RequiredReasonInputSerializer(ClosedObject):
    reason = text_field(max_length=2000, help_text="Why: the other side and the exchange read it.")


class NoteInputSerializer(ClosedObject):
    note = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", help_text="How it was delivered; optional."
    )


def _order_step(
    operation_id: str, summary: str, description: str, body: type | None, call: Any, *, e403: str
) -> type[APIView]:
    """An order's step as its own operation: the caller's firm's order, the service, the order as it is now."""

    @extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        parameters=[ID_PARAMETER],
        request=body,
        responses={
            200: OrderOutputSerializer,
            **error_responses(
                {403: e403, 404: ORDER_404, 409: STATE_409, 422: "`validation_error`, `reason_required`."},
                403,
                404,
                409,
                422,
            ),
        },
    )
    def post(self: APIView, request: AuthenticatedRequest, pk: int) -> Response:
        _firm(request)
        order = selectors.order_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        data: dict[str, Any] = {}
        if body is not None:
            require_body(request)
            serializer = body(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        call(order=order, actor=request.user, **data)
        return Response(
            _order_data(request, selectors.order_get_for_firm(firm_id=_firm(request).pk, pk=pk, with_events=True))
        )

    name = "".join(part.title() for part in operation_id.split("_")) + "Api"
    return type(name, (APIView,), {"post": post, "__doc__": description})


BUYER_403 = f"Not allowed: `{ACTING} (the buyer's), {SCOPE_TRADE}, {NO_FIRM}, {CSRF}."
PROVIDER_403 = f"Not allowed: `{ACTING} (the provider's), {SCOPE_TRADE}, {NO_FIRM}, {CSRF}."

OrderCancelApi = _order_step(
    "orders_cancel",
    "Cancel an order (buyer)",
    "Before delivery (held or released): the escrow returns to the firm's cash.",
    ReasonInputSerializer,
    orders.order_cancel,
    e403=BUYER_403,
)
OrderConfirmDeliveryApi = _order_step(
    "orders_confirm_delivery",
    "Confirm delivery (provider)",
    "The data is delivered: the buyer then accepts or disputes it, or it is accepted for the buyer when "
    "`acceptance_due_at` passes.",
    NoteInputSerializer,
    orders.order_confirm_delivery,
    e403=PROVIDER_403,
)
OrderAcceptApi = _order_step(
    "orders_accept",
    "Accept a delivery (buyer)",
    "The escrow is then settled: the price net of the exchange's fee to the provider.",
    None,
    orders.order_accept,
    e403=BUYER_403,
)
OrderDisputeApi = _order_step(
    "orders_dispute",
    "Dispute a delivery (buyer)",
    "Within the acceptance window: the escrow stays held until the exchange's staff release or refund it.",
    RequiredReasonInputSerializer,
    orders.order_dispute,
    e403=BUYER_403,
)


# --- Access requests ---------------------------------------------------------------------------------------------


class AccessRequestOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=AccessRequest.Status.choices)
    buyer = CounterpartySerializer(source="buyer_firm")
    product = serializers.IntegerField(source="product_id")
    revision = serializers.IntegerField(source="revision_number")
    intended_use = serializers.CharField()
    destination = serializers.CharField(help_text="ISO 3166-1 alpha-2, or empty on the domestic board.")
    requested_at = serializers.DateTimeField(source="created_at")
    expires_at = serializers.DateTimeField(help_text="The provider's answer is due by then, or the request expires.")
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_reason = serializers.CharField(help_text="The provider's reason; empty if none.")
    approval_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="An approval is good for one order until then."
    )


class AccessRequestCreateApi(APIView):
    class InputSerializer(ClosedObject):
        product = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The product's id.")
        intended_use = text_field(max_length=2000, help_text="What the firm will use the data for.")
        destination = serializers.ChoiceField(
            choices=list(countries), required=False, help_text="Where the data will be used (cross-border boards)."
        )

    @idempotent(required=False)
    @extend_schema(
        operation_id="access_requests_create",
        summary="Ask a provider for access (buyer)",
        description="For a product whose provider approves each buyer: the request states the intended use; the "
        "provider approves or declines it, or it expires.",
        request=InputSerializer,
        responses={
            201: AccessRequestOutputSerializer,
            **error_responses(
                {
                    403: PLACE_403,
                    404: PLACE_404,
                    409: "`not_listed`, `approval_not_required` (order it directly), `access_request_open` (one is "
                    "waiting or approved already).",
                    422: "`validation_error`.",
                },
                403,
                404,
                409,
                422,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        _firm(request)
        serializer = AccessRequestCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        created = access.access_request_create(
            actor=request.user,
            product_id=data["product"],
            intended_use=data["intended_use"],
            destination=data.get("destination", ""),
        )
        found = selectors.access_request_get_for_firm(firm_id=_firm(request).pk, pk=created.pk)
        return Response(AccessRequestOutputSerializer(found).data, status=status.HTTP_201_CREATED)


class AccessRequestListApi(ListAPIView):
    serializer_class = AccessRequestOutputSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    class ParamsSerializer(ClosedObject):
        side = serializers.ChoiceField(
            choices=SIDES,
            required=False,
            help_text="The requests the firm filed (`buyer`) or received (`provider`); both when omitted.",
        )
        status = serializers.ChoiceField(choices=AccessRequest.Status.choices, required=False)

    def get_queryset(self) -> Any:
        params = AccessRequestListApi.ParamsSerializer(
            data={k: v for k, v in self.request.query_params.items() if k in ("side", "status")}
        )
        params.is_valid(raise_exception=True)
        return selectors.access_request_list_for_firm(firm_id=_firm(self.request).pk, **params.validated_data)

    @extend_schema(
        operation_id="access_requests_list",
        summary="The firm's access requests",
        description="Filed and received, newest first, paged by cursor.",
        parameters=[ParamsSerializer],
        responses={
            200: AccessRequestOutputSerializer(many=True),
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}."}, 403),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AccessRequestDetailApi(APIView):
    @extend_schema(
        operation_id="access_requests_get",
        summary="One of the firm's access requests",
        parameters=[ID_PARAMETER],
        responses={
            200: AccessRequestOutputSerializer,
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}.", 404: REQUEST_404}, 403, 404),
        },
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        _firm(request)
        return Response(
            AccessRequestOutputSerializer(selectors.access_request_get_for_firm(firm_id=_firm(request).pk, pk=pk)).data
        )


def _request_step(operation_id: str, summary: str, body: type | None, call: Any, *, e403: str) -> type[APIView]:
    @extend_schema(
        operation_id=operation_id,
        summary=summary,
        parameters=[ID_PARAMETER],
        request=body,
        responses={
            200: AccessRequestOutputSerializer,
            **error_responses(
                {
                    403: e403,
                    404: REQUEST_404,
                    409: "`invalid_transition`: already answered, withdrawn, used or expired; `expired`; "
                    "`stale_state`.",
                    422: "`validation_error`, `reason_required`.",
                },
                403,
                404,
                409,
                422,
            ),
        },
    )
    def post(self: APIView, request: AuthenticatedRequest, pk: int) -> Response:
        _firm(request)
        found = selectors.access_request_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        data: dict[str, Any] = {}
        if body is not None:
            require_body(request)
            serializer = body(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        call(request=found, actor=request.user, **data)
        return Response(
            AccessRequestOutputSerializer(selectors.access_request_get_for_firm(firm_id=_firm(request).pk, pk=pk)).data
        )

    name = "".join(part.title() for part in operation_id.split("_")) + "Api"
    return type(name, (APIView,), {"post": post})


AccessRequestApproveApi = _request_step(
    "access_requests_approve", "Approve an access request (provider)", ReasonInputSerializer,
    access.access_request_approve, e403=PROVIDER_403,
)  # fmt: skip
AccessRequestDeclineApi = _request_step(
    "access_requests_decline", "Decline an access request (provider)", RequiredReasonInputSerializer,
    access.access_request_decline, e403=PROVIDER_403,
)  # fmt: skip
AccessRequestWithdrawApi = _request_step(
    "access_requests_withdraw", "Withdraw an access request (buyer)", None,
    access.access_request_withdraw, e403=BUYER_403,
)  # fmt: skip


# --- Balances and statement lines -------------------------------------------------------------------------------


class BalanceListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
        cash = MoneyField(max_digits=18, decimal_places=2, help_text="Available to spend or withdraw.")
        escrow = MoneyField(max_digits=18, decimal_places=2, help_text="Held for the firm's open orders.")
        payable = MoneyField(
            max_digits=18, decimal_places=2, help_text="Owed to the firm from settled sales, awaiting payout."
        )
        withdrawal = MoneyField(max_digits=18, decimal_places=2, help_text="Withdrawals requested, not yet paid.")

    @extend_schema(
        operation_id="balances_list",
        summary="The firm's balances",
        description="Per currency the firm holds at the exchange.",
        responses={200: OutputSerializer(many=True), **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}."}, 403)},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        balances = selectors.balances_for_firm(firm_id=_firm(request).pk)
        return Response(BalanceListApi.OutputSerializer(balances, many=True).data)


class FeeScheduleOutputSerializer(serializers.Serializer):
    effective_from = serializers.DateField(help_text="The first day (Asia/Shanghai) orders are charged this way.")
    provider_rate_bps = serializers.IntegerField(
        min_value=0, max_value=5_000, help_text="The provider's fee, in hundredths of a percent of the price."
    )
    buyer_rate_bps = serializers.IntegerField(
        min_value=0, max_value=5_000, help_text="The buyer's fee, in hundredths of a percent of the price."
    )
    buyer_fixed = MoneyField(
        max_digits=18, decimal_places=2, currency_source="currency", help_text="The buyer's fixed fee per order."
    )


class FeeScheduleListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        board = serializers.ChoiceField(source="board.code", choices=Board.Code.choices)
        currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
        in_force = FeeScheduleOutputSerializer(
            allow_null=True, help_text="Charged on orders placed today; null: none yet (orders are refused)."
        )
        upcoming = FeeScheduleOutputSerializer(many=True, help_text="Versions staff have scheduled, soonest first.")

    @extend_schema(
        operation_id="fee_schedules_list",
        summary="The fees on each board",
        description="Per board the caller may see and currency it settles in: the fees charged on an order placed "
        "today (copied onto the order, never changed for it) and the versions scheduled for later days.",
        responses={200: OutputSerializer(many=True), **error_responses({403: f"{SCOPE_READ}."}, 403)},
    )
    def get(self, request: Request) -> Response:
        published = selectors.fee_schedules_published(board_ids=board_access(user=request.user).visible)
        return Response(FeeScheduleListApi.OutputSerializer(published, many=True).data)


class StatementLineListApi(ListAPIView):
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        at = serializers.DateTimeField(source="entry.created_at")
        account = serializers.ChoiceField(source="account.kind", choices=Account.Kind.choices)
        currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
        amount = serializers.SerializerMethodField(
            help_text="The change of the account's balance: positive in, negative out, e.g. `-1200.00`."
        )
        kind = serializers.ChoiceField(source="entry.kind", choices=JournalEntry.Kind.choices)
        memo = serializers.CharField(source="entry.memo")
        order = serializers.SerializerMethodField(help_text="The order's id, for a line of an order; else null.")

        @extend_schema_field(MoneyField(max_digits=18, decimal_places=2))
        def get_amount(self, posting: Any) -> str:
            # Postings are signed debit positive; a member's accounts are credit-normal: the firm's view is the
            # change of what the exchange owes it.
            return str(posting.amount * posting.account.sign)

        @extend_schema_field(serializers.IntegerField(allow_null=True))
        def get_order(self, posting: Any) -> int | None:
            charge = posting.entry.charge
            return charge.order_id if charge is not None else None

    class ParamsSerializer(ClosedObject):
        currency = serializers.ChoiceField(choices=CURRENCY_CHOICES, required=False)
        account = serializers.ChoiceField(choices=MEMBER_ACCOUNTS, required=False)

    def get_queryset(self) -> Any:
        params = StatementLineListApi.ParamsSerializer(
            data={k: v for k, v in self.request.query_params.items() if k in ("currency", "account")}
        )
        params.is_valid(raise_exception=True)
        lines = selectors.statement_lines(firm_id=_firm(self.request).pk)
        if "currency" in params.validated_data:
            lines = lines.filter(currency=params.validated_data["currency"])
        if "account" in params.validated_data:
            lines = lines.filter(account__kind=params.validated_data["account"])
        return lines

    def get_serializer_class(self) -> Any:
        return StatementLineListApi.OutputSerializer

    @extend_schema(
        operation_id="statement_lines_list",
        summary="The firm's statement lines",
        description="Every movement on the firm's accounts, newest first, paged by cursor.",
        parameters=[ParamsSerializer],
        responses={
            200: OutputSerializer(many=True),
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}."}, 403),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- Withdrawals ---------------------------------------------------------------------------------------------------


class WithdrawalOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Withdrawal.Status.choices)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    amount = MoneyField(max_digits=18, decimal_places=2, currency_source="currency")
    bank_account = serializers.CharField()
    requested_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    bank_reference = serializers.CharField(help_text="The bank's reference of the payment, once paid.")
    reason = serializers.CharField(help_text="Why it was rejected; else empty.")


WITHDRAWAL_403 = (
    f"Not allowed: `not_allowed` (only the firm's administrators), `staff_made_key` (an API key exchange staff "
    f"made), {SCOPE_TRADE}, {NO_FIRM}, {CSRF}."
)


class WithdrawalCreateApi(APIView):
    class InputSerializer(ClosedObject):
        currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
        amount = MoneyInputField(whole_digits=10, decimal_places=2, help_text="Up to the cash available.")
        bank_account = text_field(
            max_length=500, help_text="Account holder, number and bank: the firm's account on file."
        )

    @idempotent(required=True)
    @extend_schema(
        operation_id="withdrawals_create",
        summary="Request a withdrawal (firm administrator)",
        description="The amount leaves the cash available at once and waits until the exchange's settlement clerks "
        "approve it (two of them above a limit) and pay it. Requires an `Idempotency-Key`.",
        request=InputSerializer,
        responses={
            201: WithdrawalOutputSerializer,
            **error_responses(
                {
                    403: WITHDRAWAL_403,
                    422: "`validation_error`; `insufficient_funds` (more than the cash available).",
                },
                403,
                422,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        firm = _firm(request)
        _require_firm_made_key(request)
        serializer = WithdrawalCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = withdrawals.withdrawal_request(firm=firm, actor=request.user, **serializer.validated_data)
        found = selectors.withdrawal_get_for_firm(firm_id=_firm(request).pk, pk=created.pk)
        return Response(WithdrawalOutputSerializer(found).data, status=status.HTTP_201_CREATED)


class WithdrawalListApi(ListAPIView):
    serializer_class = WithdrawalOutputSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return selectors.withdrawal_list_for_firm(firm_id=_firm(self.request).pk)

    @extend_schema(
        operation_id="withdrawals_list",
        summary="The firm's withdrawals",
        description="Newest first, paged by cursor.",
        responses={
            200: WithdrawalOutputSerializer(many=True),
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}."}, 403),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WithdrawalDetailApi(APIView):
    @extend_schema(
        operation_id="withdrawals_get",
        summary="One of the firm's withdrawals",
        parameters=[ID_PARAMETER],
        responses={
            200: WithdrawalOutputSerializer,
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}.", 404: WITHDRAWAL_404}, 403, 404),
        },
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        _firm(request)
        return Response(
            WithdrawalOutputSerializer(selectors.withdrawal_get_for_firm(firm_id=_firm(request).pk, pk=pk)).data
        )


class WithdrawalCancelApi(APIView):
    @extend_schema(
        operation_id="withdrawals_cancel",
        summary="Cancel a withdrawal (firm administrator)",
        description="Before a clerk has approved it: the amount returns to the cash available.",
        parameters=[ID_PARAMETER],
        request=None,
        responses={
            200: WithdrawalOutputSerializer,
            **error_responses(
                {403: WITHDRAWAL_403, 404: WITHDRAWAL_404, 409: "`invalid_transition`, `stale_state`."}, 403, 404, 409
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        _firm(request)
        found = selectors.withdrawal_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        withdrawals.withdrawal_cancel(withdrawal=found, actor=request.user)
        return Response(
            WithdrawalOutputSerializer(selectors.withdrawal_get_for_firm(firm_id=_firm(request).pk, pk=pk)).data
        )


# --- Entitlements --------------------------------------------------------------------------------------------------


class EntitlementOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField(help_text="As people quote it, e.g. `E-00000012`.")
    order = serializers.IntegerField(source="order_id", help_text="The order it comes from (orders_get).")
    order_reference = serializers.CharField(source="order.reference")
    product = serializers.IntegerField(source="product_id")
    title_en = serializers.CharField(source="order.snapshot.revision.title_en")
    title_zh = serializers.CharField(source="order.snapshot.revision.title_zh")
    provider = serializers.CharField(source="product.provider.legal_name_en", help_text="The provider's legal name.")
    revision = serializers.IntegerField(source="revision.number", help_text="The revision bought.")
    follows_revisions = serializers.BooleanField(
        help_text="A subscription's: the revisions listed later are included too."
    )
    delivery_mode = serializers.ChoiceField(choices=DeliveryMode.choices)
    status = serializers.ChoiceField(choices=Entitlement.Status.choices)
    usable = serializers.SerializerMethodField(
        help_text="Whether the data may be delivered under it now: active, within its term, the product listed."
    )
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(allow_null=True, help_text="Null: the licence has no end.")
    calls_included = serializers.IntegerField(
        allow_null=True, help_text="API delivery: the calls included per period; null for none or no quota."
    )
    licence_terms = serializers.DictField(source="order.snapshot.licence.terms", help_text="As the order copied them.")
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.ChoiceField(
        choices=Entitlement.EndReason.choices, allow_blank=True, help_text="Why it ended; empty while active."
    )
    end_note = serializers.CharField(help_text="The reason given, when a person ended it; else empty.")
    renews = serializers.BooleanField(
        help_text="A subscription: whether its next period will be charged when this one ends (entitlements_stop_renewal)."
    )
    grace_until = serializers.DateTimeField(
        allow_null=True, help_text="A lapsed subscription: a deposit by then renews it; null otherwise."
    )
    downloads = serializers.IntegerField(
        source="downloads_completed", help_text="File delivery: the downloads of its file completed so far."
    )

    @extend_schema_field(serializers.BooleanField())
    def get_usable(self, entitlement: Entitlement) -> bool:
        return selectors.entitlement_usable(entitlement)


ENTITLEMENT_404 = "`not_found`: no entitlement of the firm's with this id (another firm's included)."


class EntitlementListApi(ListAPIView):
    serializer_class = EntitlementOutputSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    class ParamsSerializer(ClosedObject):
        status = serializers.ChoiceField(
            choices=Entitlement.Status.choices, required=False, help_text="Only this status."
        )

    def get_queryset(self) -> Any:
        params = EntitlementListApi.ParamsSerializer(
            data={k: v for k, v in self.request.query_params.items() if k == "status"}
        )
        params.is_valid(raise_exception=True)
        return selectors.entitlement_list_for_firm(firm_id=_firm(self.request).pk, **params.validated_data)

    @extend_schema(
        operation_id="entitlements_list",
        summary="The firm's entitlements (buyer)",
        description="What the firm may use of what it bought: one per order released, newest first, paged by "
        "cursor. An entitlement ends, for good, when its order is cancelled or refunded, its term runs out, the "
        "product is suspended or delisted, compliance no longer clears the export, or the exchange revokes it.",
        parameters=[ParamsSerializer],
        responses={
            200: EntitlementOutputSerializer(many=True),
            **error_responses({400: "`validation_error`.", 403: f"{SCOPE_READ}, {NO_FIRM}."}, 400, 403),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class EntitlementDetailApi(APIView):
    @extend_schema(
        operation_id="entitlements_get",
        summary="One of the firm's entitlements (buyer)",
        parameters=[ID_PARAMETER],
        responses={
            200: EntitlementOutputSerializer,
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}.", 404: ENTITLEMENT_404}, 403, 404),
        },
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        return Response(EntitlementOutputSerializer(entitlement).data)


class EntitlementDownloadLinkApi(APIView):
    required_scope = ApiKey.Scope.READ  # a POST that reads: a key that may read the firm's data may download it

    class OutputSerializer(serializers.Serializer):
        url = serializers.CharField(help_text="The signed link, absolute. It is the credential: no API key is sent.")
        expires_at = serializers.DateTimeField(help_text="After it, the link answers 410 `link_expired`.")
        format = serializers.ChoiceField(choices=Dataset.Format.choices)
        size = serializers.IntegerField(help_text="Bytes.")
        sha256 = serializers.CharField(help_text="Of the file, hexadecimal (also sent as `Repr-Digest`).")
        revision = serializers.IntegerField(help_text="The revision whose dataset the link delivers.")

    @extend_schema(
        operation_id="entitlements_download_link",
        summary="A signed download link to the entitlement's file (buyer)",
        description="For file delivery: a new link each call, valid for "
        f"{settings.SETTLEMENT_DOWNLOAD_LINK_SECONDS // 60} minutes and only while the entitlement is usable. "
        "`GET` the link (no API key) for the file, streamed with `Content-Length`, `Repr-Digest` (SHA-256) and "
        "`Content-Disposition`; a refusal there is this API's error shape: `link_invalid` (404), `link_expired` "
        "(410), `entitlement_not_usable` (409). Every download is logged; the first complete download of a one-off "
        "purchase marks its order delivered. The link is made for the caller's user: it stops working if that "
        "person leaves the firm.",
        parameters=[ID_PARAMETER],
        request=None,
        responses={
            200: OutputSerializer,
            **error_responses(
                {
                    403: f"`not_allowed`, {SCOPE_READ}, {NO_FIRM}, {CSRF}.",
                    404: ENTITLEMENT_404,
                    409: "`not_file_delivery` (the entitlement is to API or sandbox delivery); "
                    "`entitlement_not_usable` (ended, lapsed, or the product off the market); `dataset_missing`.",
                },
                403,
                404,
                409,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        link = downloads.download_link(entitlement=entitlement, user=request.user)
        url = request.build_absolute_uri(reverse("entitlement-download", args=[link.token]))
        dataset = link.dataset
        return Response(
            EntitlementDownloadLinkApi.OutputSerializer(
                {
                    "url": url,
                    "expires_at": link.expires_at,
                    "format": dataset.format,
                    "size": dataset.size,
                    "sha256": dataset.sha256,
                    "revision": dataset.revision.number,
                }
            ).data
        )


# --- Sandbox delivery: aggregate queries ------------------------------------------------------------------------


class SandboxMeasureSerializer(ClosedObject):
    fn = serializers.ChoiceField(choices=[(f, f) for f in sandbox_engine.FUNCTIONS])
    field = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="A dictionary field the provider allows as a measure (`count` and `count_distinct`: or a "
        "dimension); `count` without one counts rows. Never the identifier.",
    )


class SandboxFilterSerializer(ClosedObject):
    field = serializers.CharField(help_text="A dimension field the provider allows (one filter per field).")
    op = serializers.ChoiceField(choices=[(o, o) for o in sandbox_engine.OPERATORS])
    value = serializers.JSONField(
        help_text="`eq`, `gte`, `lte`: one value of the field's type (dates as `YYYY-MM-DD`); `in`: a list of 1 to "
        f"{settings.SANDBOX_MAX_IN_VALUES}; `between`: `[from, to]`, both included."
    )


class SandboxQueryInputSerializer(ClosedObject):
    measures = serializers.ListField(
        child=SandboxMeasureSerializer(), min_length=1, max_length=settings.SANDBOX_MAX_MEASURES
    )
    group_by = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        max_length=settings.SANDBOX_MAX_GROUPS,
        help_text="Dimension fields the provider allows.",
    )
    filters = serializers.ListField(
        child=SandboxFilterSerializer(), required=False, max_length=settings.SANDBOX_MAX_FILTERS
    )
    order_by = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Columns of the answer (a group's field, or a measure's `<fn>_<field>` / `count`); `-` before a "
        "name for descending.",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=settings.SANDBOX_MAX_ROWS, help_text="Rows at most (the default)."
    )


class SandboxColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=[("group", "group"), ("measure", "measure")])
    type = serializers.CharField(help_text="A group's field type, or a measure's function.")


class SandboxAnswerSerializer(serializers.Serializer):
    columns = SandboxColumnSerializer(many=True)
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField()),
        help_text="One list per published cell, in the columns' order (decimals as strings, dates as ISO 8601).",
    )
    suppressed = serializers.IntegerField(help_text="Cells not published: fewer than `min_individuals` individuals.")
    min_individuals = serializers.IntegerField(help_text="N: every published row aggregates at least this many.")
    rows_total = serializers.IntegerField(help_text="Published cells before `limit`.")
    duration_ms = serializers.IntegerField()
    note = serializers.CharField(help_text="What the answer protects, and how many rows were suppressed.")


class SandboxQueryLogSerializer(serializers.ModelSerializer):
    user = serializers.EmailField(source="user.email", allow_null=True, default=None)

    class Meta:
        model = SandboxQuery
        fields = [
            "id", "user", "query", "outcome", "error_code", "rows_out", "rows_suppressed", "duration_ms", "created_at"
        ]  # fmt: skip


SANDBOX_409 = (
    "`not_sandbox_delivery` (the entitlement is to file or API delivery); `entitlement_not_usable` (ended, lapsed, "
    "or the product off the market); `dataset_missing`; `sandbox_not_configured`."
)


class EntitlementQueryListApi(ListAPIView):
    serializer_class = SandboxQueryLogSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(self.request).pk, pk=self.kwargs["pk"])
        return selectors.sandbox_query_list(entitlement=entitlement)

    @extend_schema(
        operation_id="entitlements_queries_list",
        summary="The sandbox queries asked under an entitlement (buyer)",
        description="Every query of the firm's members, answered or refused, newest first, paged by cursor.",
        parameters=[ID_PARAMETER],
        responses={
            200: SandboxQueryLogSerializer(many=True),
            **error_responses(
                {400: "`validation_error` (a bad cursor or page size).", 403: f"{SCOPE_READ}, {NO_FIRM}.",
                 404: ENTITLEMENT_404}, 400, 403, 404,
            ),
        },
    )  # fmt: skip
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class EntitlementQueryCreateApi(APIView):
    required_scope = ApiKey.Scope.READ  # a POST that reads, as the download link

    @extend_schema(
        operation_id="entitlements_queries_create",
        summary="Run a sandbox aggregate query (buyer)",
        description='Sandbox delivery, "usable but not visible": aggregates of the dataset, never its rows. '
        "The query is structured JSON (never SQL) over the fields the provider allows: `measures` "
        "(count, count_distinct, sum, avg, min, max), `group_by` and `filters` on dimensions. Every published row "
        "aggregates at least `min_individuals` distinct individuals (the product's N); a cell with fewer, or one a "
        "filter would narrow to fewer (checked at the grain of the groups and every filtered field, and for the "
        "individuals each filter removes), is suppressed and counted in `suppressed`. MIN and MAX answer the N-th "
        "smallest and largest individual's value. The identifier field is never named. Each answered query counts "
        "as one call of the entitlement's period; every query is logged (`GET` the same path).",
        parameters=[ID_PARAMETER],
        request=SandboxQueryInputSerializer,
        responses={
            200: SandboxAnswerSerializer,
            **error_responses(
                {
                    400: "`query_malformed` (not the query's shape; `details.at` names the place).",
                    403: f"`not_allowed`, {SCOPE_READ}, {NO_FIRM}, {CSRF}.",
                    404: ENTITLEMENT_404,
                    409: SANDBOX_409,
                    422: "The query breaks the dictionary or the provider's rules (`details.at` names the place): "
                    "`unknown_field`, `identifier_not_allowed`, `field_not_allowed`, `function_type_mismatch`, "
                    "`operator_type_mismatch`, `unknown_function`, `unknown_operator`, `unknown_column`, "
                    "`measures_missing`, `too_many`, `duplicate`, `bad_value`.",
                    429: "`quota_exhausted` (the period's calls are used up) or `usage_budget_exhausted`.",
                    503: "`sandbox_unavailable`: the engine could not run it now (not counted).",
                },
                400,
                403,
                404,
                409,
                422,
                429,
                503,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        answer = sandbox_service.sandbox_query(entitlement=entitlement, user=request.user, query=request.data)
        return Response(
            SandboxAnswerSerializer(
                {
                    "columns": answer.columns,
                    "rows": answer.rows,
                    "suppressed": answer.suppressed,
                    "min_individuals": answer.min_individuals,
                    "rows_total": answer.rows_total,
                    "duration_ms": answer.duration_ms,
                    "note": answer.note,
                }
            ).data
        )


class EntitlementStopRenewalApi(APIView):
    @extend_schema(
        operation_id="entitlements_stop_renewal",
        summary="Stop a subscription (buyer)",
        description="No period is charged after the one paid: the entitlement stays usable to `ends_at`, then ends "
        "(`stopped`). A lapsed subscription (its renewal unpaid) ends now. Calling it again on a stopped one changes "
        "nothing.",
        parameters=[ID_PARAMETER],
        request=None,
        responses={
            200: EntitlementOutputSerializer,
            **error_responses(
                {
                    403: f"`not_allowed` (the firm's administrators and traders only), {SCOPE_TRADE}, {NO_FIRM}, "
                    f"{CSRF}.",
                    404: ENTITLEMENT_404,
                    409: "`not_renewing` (not a subscription, or ended); `stale_state`.",
                },
                403,
                404,
                409,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        firm = _firm(request)
        entitlement = selectors.entitlement_get_for_firm(firm_id=firm.pk, pk=pk)
        orders.entitlement_stop(entitlement=entitlement, actor=request.user)
        return Response(EntitlementOutputSerializer(selectors.entitlement_get_for_firm(firm_id=firm.pk, pk=pk)).data)


# --- API delivery: the entitlement's data credential and its usage ------------------------------------------------


class DataCredentialOutputSerializer(serializers.Serializer):
    entitlement = serializers.IntegerField(source="entitlement_id")
    prefix = serializers.CharField(help_text="The credential's public part: `dxd_<prefix>_…`.")
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True, help_text="Null while it works.")


def _gateway_url(request: Request, entitlement: Entitlement) -> str:
    return request.build_absolute_uri(reverse("data:rows", args=[entitlement.pk]))


class EntitlementCredentialCreateApi(APIView):
    class OutputSerializer(DataCredentialOutputSerializer):
        key = serializers.CharField(
            help_text="The credential, whole: shown this once and never again (the exchange keeps only its hash). "
            "Send it as `Authorization: Data-Key <key>` to the data gateway."
        )
        rows_url = serializers.CharField(help_text="The data gateway's rows of this entitlement.")
        schema_url = serializers.CharField(help_text="Its data dictionary, as the gateway answers it.")

    @extend_schema(
        operation_id="entitlements_credential_issue",
        summary="A new data credential for the entitlement (buyer)",
        description="For API delivery: the entitlement's own key to the data gateway (`/data/v1/`, documented by "
        "its own schema at `/data/v1/openapi.json`), separate from the firm's API keys. Answered once with the whole "
        "key; the one made before, if any, stops working (at most one works). It stops working too when it is "
        "revoked or the entitlement ends.",
        parameters=[ID_PARAMETER],
        request=None,
        responses={
            201: OutputSerializer,
            **error_responses(
                {
                    403: f"`not_allowed` (the firm's administrators and traders only), {SCOPE_TRADE}, {NO_FIRM}, "
                    f"{CSRF}.",
                    404: ENTITLEMENT_404,
                    409: "`not_api_delivery` (the entitlement is to file or sandbox delivery); "
                    "`entitlement_not_usable` (ended, lapsed, or the product off the market).",
                },
                403,
                404,
                409,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        credential, raw_key = credentials.credential_issue(entitlement=entitlement, actor=request.user)
        data = {
            "entitlement_id": entitlement.pk,
            "prefix": credential.prefix,
            "created_at": credential.created_at,
            "revoked_at": None,
            "key": raw_key,
            "rows_url": _gateway_url(request, entitlement),
            "schema_url": request.build_absolute_uri(reverse("data:schema", args=[entitlement.pk])),
        }
        return Response(EntitlementCredentialCreateApi.OutputSerializer(data).data, status=status.HTTP_201_CREATED)


class EntitlementCredentialRevokeApi(APIView):
    @extend_schema(
        operation_id="entitlements_credential_revoke",
        summary="Revoke the entitlement's data credential (buyer)",
        description="The credential that works stops working at once (the gateway answers 401 `data_key_revoked`). "
        "Make a new one with entitlements_credential_issue.",
        parameters=[ID_PARAMETER],
        request=None,
        responses={
            200: DataCredentialOutputSerializer,
            **error_responses(
                {
                    403: f"`not_allowed` (the firm's administrators and traders only), {SCOPE_TRADE}, {NO_FIRM}, "
                    f"{CSRF}.",
                    404: ENTITLEMENT_404,
                    409: "`no_credential`: the entitlement has no credential that works; `already_revoked`: it "
                    "was revoked meanwhile.",
                },
                403,
                404,
                409,
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        credential = selectors.data_credential_live(entitlement=entitlement)
        if credential is None:
            raise InvalidTransition(_("This entitlement has no data credential that works."), code="no_credential")
        credential.entitlement = entitlement
        revoked = credentials.credential_revoke(credential=credential, actor=request.user)
        return Response(DataCredentialOutputSerializer(revoked).data)


class UsageOutputSerializer(serializers.Serializer):
    period_start = serializers.DateField()
    period_end = serializers.DateField(allow_null=True, help_text="Null: the licence has no end.")
    current = serializers.BooleanField(help_text="The period calls count against now.")
    calls = serializers.IntegerField(help_text="Calls answered in the period (pages of rows, sandbox queries).")
    calls_included = serializers.IntegerField(allow_null=True, help_text="Included in the price; null: no quota.")
    call_limit = serializers.IntegerField(
        allow_null=True,
        help_text="The most calls the period may have (the included ones and what the usage budget "
        "pays for); past it the gateway answers 429. Null: no limit.",
    )
    unit_price = MoneyField(
        max_digits=14, decimal_places=6, allow_null=True, help_text="Per call beyond those included; null: none."
    )
    currency = serializers.CharField(source="entitlement.order.currency")
    charged = MoneyField(
        max_digits=18,
        decimal_places=2,
        allow_null=True,
        help_text="Charged for the period once it closed; null before.",
    )


class EntitlementUsageApi(APIView):
    class OutputSerializer(serializers.Serializer):
        entitlement = serializers.IntegerField()
        periods = UsageOutputSerializer(many=True, help_text="The latest first.")

    @extend_schema(
        operation_id="entitlements_usage",
        summary="The entitlement's calls per period (buyer)",
        description="For API and sandbox delivery: per period, the calls made, those included, the most allowed "
        "and what was charged. The current period's calls are counted as they are made (a file delivery has none).",
        parameters=[ID_PARAMETER],
        responses={
            200: OutputSerializer,
            **error_responses({403: f"{SCOPE_READ}, {NO_FIRM}.", 404: ENTITLEMENT_404}, 403, 404),
        },
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        entitlement = selectors.entitlement_get_for_firm(firm_id=_firm(request).pk, pk=pk)
        current = metering.usage_found(entitlement) if entitlement.delivery_mode != DeliveryMode.FILE else None
        current_pk = current.pk if current is not None else None
        periods = []
        for usage in selectors.usage_list_for_entitlement(entitlement=entitlement):
            usage.entitlement = entitlement
            periods.append(_usage_data(usage, current=usage.pk == current_pk))
        return Response(EntitlementUsageApi.OutputSerializer({"entitlement": entitlement.pk, "periods": periods}).data)


def _usage_data(usage: Usage, *, current: bool) -> dict[str, Any]:
    return {
        "period_start": usage.period_start,
        "period_end": usage.period_end,
        "current": current,
        "calls": metering.usage_calls(usage) if usage.closed_at is None else usage.calls,
        "calls_included": usage.calls_included,
        "call_limit": usage.call_limit,
        "unit_price": usage.unit_price,
        "entitlement": usage.entitlement,
        "charged": usage.charged,
    }
