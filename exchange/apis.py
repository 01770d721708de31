"""The core's API: who am I, which boards, and a firm administrator's API keys.

One class per operation (`<Entity><Action>Api`). Reads go through exchange.selectors, writes through
exchange.services, which decide who may do what; the key operations first ask exchange.permissions whether the
caller administers a firm, so that a trader learns who may (403) and another firm's key is simply not found (404).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .api import ClosedObject, DateTimeField, error_responses
from .exceptions import error_body
from .models import ApiKey, Board, MemberFirm, Membership
from .money import CURRENCY_CHOICES
from .pagination import IdCursorPagination
from .permissions import ApiKeyScope, require_firm_admin
from .selectors import MAX_ID, api_key_get_for_firm, api_key_list_for_firm, board_access, user_membership
from .types import AuthenticatedRequest

# --- Who am I, and the boards ---------------------------------------------------------------------------


class BoardOutputSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=Board.Code.choices)
    name_en = serializers.CharField()
    name_zh = serializers.CharField()
    settlement_currencies = serializers.ListField(
        child=serializers.ChoiceField(choices=CURRENCY_CHOICES), help_text="The currencies trades settle in."
    )
    is_cross_border = serializers.BooleanField(help_text="Whether trades on this board may move data abroad.")
    can_trade = serializers.SerializerMethodField(help_text="Whether the caller's firm may trade on this board.")

    def get_can_trade(self, board: Board) -> bool:
        return board.id in self.context["tradable_ids"]


class FirmOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    legal_name_en = serializers.CharField()
    legal_name_zh = serializers.CharField()
    country = serializers.CharField(help_text="The country of registration: an ISO 3166-1 alpha-2 code.")
    role = serializers.ChoiceField(choices=MemberFirm.Role.choices)
    kyc_status = serializers.ChoiceField(choices=MemberFirm.KycStatus.choices)


class MeApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="What follows `dxk_` in the key: how to tell keys apart.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.Scope.choices))
    expires_at = serializers.DateTimeField()


class MeApi(APIView):
    # Every key may ask who it is and what it may do, whatever its scopes.
    required_scope = ApiKeyScope.ANY

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        is_staff = serializers.BooleanField()
        firm = FirmOutputSerializer(allow_null=True)
        membership_role = serializers.ChoiceField(choices=Membership.Role.choices, allow_null=True)
        boards_visible = serializers.ListField(child=serializers.ChoiceField(choices=Board.Code.choices))
        boards_tradable = serializers.ListField(child=serializers.ChoiceField(choices=Board.Code.choices))
        api_key = MeApiKeySerializer(
            allow_null=True, help_text="The API key the request came with, its scopes and expiry; null for a session."
        )

    @extend_schema(
        operation_id="me_get",
        summary="The caller: user, firm, boards and credential",
        description="Any API key may ask, whatever its scopes.",
        responses={200: OutputSerializer},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        user = request.user
        membership = user_membership(user)
        access = board_access(user=user)
        codes = dict(Board.objects.filter(id__in=access.visible).values_list("id", "code"))
        data: dict[str, Any] = {
            "id": user.pk,
            "email": user.email,
            "full_name": user.full_name,
            "is_staff": user.is_staff,
            "firm": membership.firm if membership else None,
            "membership_role": membership.role if membership else None,
            "boards_visible": sorted(codes[i] for i in access.visible),
            "boards_tradable": sorted(codes[i] for i in access.tradable),
            "api_key": request.auth if isinstance(request.auth, ApiKey) else None,
        }
        return Response(MeApi.OutputSerializer(data).data)


class BoardListApi(APIView):
    @extend_schema(
        operation_id="boards_list",
        summary="Boards the caller may see",
        responses={
            200: BoardOutputSerializer(many=True),
            **error_responses({403: "`insufficient_scope`: an API key without `read`."}, 403),
        },
    )
    def get(self, request: Request) -> Response:
        access = board_access(user=request.user)
        boards = Board.objects.filter(id__in=access.visible).order_by("id")
        return Response(BoardOutputSerializer(boards, many=True, context={"tradable_ids": access.tradable}).data)


# --- API keys ----------------------------------------------------------------------------------------------


def _key_firm(request: Request) -> MemberFirm:
    return require_firm_admin(request.user, _("Only your firm's administrators can manage API keys."))


def _actor_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


KEY_PARAMETER = OpenApiParameter(
    "id",
    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    OpenApiParameter.PATH,
    description="The key's id.",
)
FORBIDDEN = (
    "`not_allowed`: the caller is not its firm's administrator (only they manage the firm's API keys); "
    "`insufficient_scope`: an API key without the `keys` scope"
)
CSRF = "`permission_denied`: a session's request without its CSRF token"
MINT_FORBIDDEN = (
    f"{FORBIDDEN}, or one that would give the new key a scope it does not hold itself (`details.scopes`); "
    f"`staff_account`: the new key would act for an exchange staff account (a superuser's decision, made in the "
    f"admin); {CSRF}."
)
KEY_ERRORS = {
    403: f"{FORBIDDEN}.",
    404: "No such key, or another firm's (the two are not told apart).",
    409: "`invalid_transition`: the key is already revoked.",
}


def _key_errors(*codes: int, **descriptions: str) -> dict[int, Any]:
    """The error responses of a key operation; `descriptions` (`e403="..."`) replace the shared ones."""
    return error_responses({**KEY_ERRORS, **{int(k[1:]): v for k, v in descriptions.items()}}, *codes)


class ApiKeyDetailApi(APIView):
    required_scope = ApiKey.Scope.KEYS

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        prefix = serializers.CharField(help_text="What follows `dxk_` in the key: how to tell keys apart.")
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.Scope.choices))
        acts_for = serializers.CharField(
            source="user.get_full_name", help_text="The member whose access the key uses (name, or e-mail address)."
        )
        created_by = serializers.CharField(source="created_by.get_full_name", help_text="Who made it.")
        created_at = serializers.DateTimeField()
        expires_at = serializers.DateTimeField()
        revoked_at = serializers.DateTimeField(allow_null=True)
        last_used_at = serializers.DateTimeField(allow_null=True, help_text="To the minute.")
        is_active = serializers.BooleanField(help_text="Usable now: neither revoked nor expired.")

    @extend_schema(
        operation_id="api_keys_get",
        summary="One of the firm's API keys",
        description="Never the key itself, which is shown once, when it is made. Needs the `keys` scope.",
        parameters=[KEY_PARAMETER],
        responses={200: OutputSerializer, **_key_errors(403, 404)},
    )
    def get(self, request: AuthenticatedRequest, pk: int) -> Response:
        api_key = api_key_get_for_firm(firm=_key_firm(request), pk=pk)
        return Response(ApiKeyDetailApi.OutputSerializer(api_key).data)


class ApiKeyListApi(ListAPIView):
    required_scope = ApiKey.Scope.KEYS
    serializer_class = ApiKeyDetailApi.OutputSerializer
    pagination_class = IdCursorPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return api_key_list_for_firm(firm=_key_firm(self.request))

    @extend_schema(
        operation_id="api_keys_list",
        summary="The firm's API keys",
        description="Every key of the caller's firm, revoked and expired ones too, newest first, paged by cursor "
        "(follow `next`). Needs the `keys` scope.",
        responses={200: ApiKeyDetailApi.OutputSerializer(many=True), **_key_errors(403)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ApiKeyCreatedSerializer(ApiKeyDetailApi.OutputSerializer):
    """A key just made, with the key itself: shown in this answer only."""

    key = serializers.SerializerMethodField(
        help_text="The key itself, `dxk_<prefix>_<secret>`: shown in this answer only. The exchange keeps its hash, "
        "never the key: store it now."
    )

    def get_key(self, api_key: ApiKey) -> str:
        return str(self.context["raw_key"])


class ApiKeyCreateApi(APIView):
    # Not @idempotent (exchange.idempotency), nor is the rotation: the answer carries the new key itself, which the
    # exchange keeps only as a hash, and a stored answer to replay would keep it in clear (docs/api.md).
    required_scope = ApiKey.Scope.KEYS

    class InputSerializer(ClosedObject):
        # Taken as given: a label the firm chooses (a name of spaces is its own affair, and trimming would make
        # "  " a schema-valid request the server refuses).
        name = serializers.CharField(
            max_length=100, trim_whitespace=False, help_text="What the key is for, e.g. “ERP integration”."
        )
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=ApiKey.Scope.choices),
            min_length=1,
            max_length=len(ApiKey.Scope.values),
            help_text="`read`: the catalogue, compliance pre-checks and the firm's records; `trade`: a provider's "
            "listings, the firm's filings, orders, access requests and withdrawals; `keys`: the firm's API keys. Through an API key, only scopes it "
            "holds itself.",
        )
        expires_at = DateTimeField(
            required=False,
            out_of_range_code="invalid_expiry",
            help_text=f"In the future and at most {ApiKey.MAX_LIFETIME.days} days ahead; a year from now when omitted.",
        )

    @extend_schema(
        operation_id="api_keys_create",
        summary="Create an API key",
        description="A key for the caller (the firm's administrator), answered once with the key itself. A firm "
        "holds a limited number of active keys. Needs the `keys` scope.",
        request=InputSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            **_key_errors(
                403,
                422,
                e403=MINT_FORBIDDEN,
                e422="`api_key_limit`: the firm holds the most active keys it may (revoke one first); "
                "`invalid_expiry`: `expires_at` is not in the future, or too far ahead (`details.expires_at`).",
            ),
        },
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        firm = _key_firm(request)
        serializer = ApiKeyCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        api_key, raw_key = services.api_key_create(
            firm=firm,
            user=request.user,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            actor=request.user,
            actor_key=_actor_key(request),
        )
        api_key = api_key_get_for_firm(firm=firm, pk=api_key.pk)
        data = ApiKeyCreatedSerializer(api_key, context={"raw_key": raw_key}).data
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(APIView):
    required_scope = ApiKey.Scope.KEYS

    @extend_schema(
        operation_id="api_keys_revoke",
        summary="Revoke an API key",
        description="At once and for good: the key answers 401 `api_key_revoked` from now on. Needs the `keys` "
        "scope (a key may revoke itself).",
        parameters=[KEY_PARAMETER],
        request=None,
        responses={200: ApiKeyDetailApi.OutputSerializer, **_key_errors(403, 404, 409, e403=f"{FORBIDDEN}; {CSRF}.")},
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        api_key = api_key_get_for_firm(firm=_key_firm(request), pk=pk)
        services.api_key_revoke(api_key=api_key, actor=request.user)
        api_key = api_key_get_for_firm(firm=api_key.firm, pk=pk)
        return Response(ApiKeyDetailApi.OutputSerializer(api_key).data)


class ApiKeyRotateApi(APIView):
    required_scope = ApiKey.Scope.KEYS

    class OutputSerializer(ApiKeyCreatedSerializer):
        replaces = serializers.SerializerMethodField(help_text="The id of the key it replaces, revoked now.")

        def get_replaces(self, api_key: ApiKey) -> int:
            return int(self.context["replaces"])

    @extend_schema(
        operation_id="api_keys_rotate",
        summary="Rotate an API key",
        description="A new key for the same member, with the same name and scopes and the same lifetime counted "
        "from now, answered once with the key itself; the old key is revoked in the same step. Needs the `keys` "
        "scope, and through an API key every scope of the key rotated.",
        parameters=[KEY_PARAMETER],
        request=None,
        responses={
            201: OutputSerializer,
            **_key_errors(
                403,
                404,
                409,
                422,
                e403=MINT_FORBIDDEN,
                e422="`api_key_limit`: the key rotated had expired, and the firm holds the most active keys it may.",
            ),
        },
    )
    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        firm = _key_firm(request)
        old = api_key_get_for_firm(firm=firm, pk=pk)
        new, raw_key = services.api_key_rotate(api_key=old, actor=request.user, actor_key=_actor_key(request))
        new = api_key_get_for_firm(firm=firm, pk=new.pk)
        data = ApiKeyRotateApi.OutputSerializer(new, context={"raw_key": raw_key, "replaces": old.pk}).data
        return Response(data, status=status.HTTP_201_CREATED)


# --- What no endpoint answers ------------------------------------------------------------------------------


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Every path under /api/v1/ that no endpoint matches, for every method: the API's JSON 404. Exempt from
    CSRF, which would otherwise refuse a POST first with Django's HTML page; it changes nothing."""
    if request.method in ("GET", "HEAD") and not request.path.endswith("/"):
        # What CommonMiddleware's APPEND_SLASH would do if this catch-all did not match everything.
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            return redirect(request.get_full_path().replace(request.path, request.path + "/", 1), permanent=True)
    response = JsonResponse(error_body("not_found", "No such API endpoint."), status=404)
    response["Cache-Control"] = "private, no-store"
    return response
