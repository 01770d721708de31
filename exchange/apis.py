"""The core's API: who am I, and which boards."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .exceptions import error_body
from .models import Board
from .selectors import board_access, user_membership
from .types import AuthenticatedRequest


class BoardOutputSerializer(serializers.ModelSerializer):
    can_trade = serializers.SerializerMethodField()

    class Meta:
        model = Board
        fields = ["code", "name_en", "name_zh", "fee_rate_bps", "settlement_currencies", "is_cross_border", "can_trade"]

    def get_can_trade(self, board: Board) -> bool:
        return board.id in self.context["tradable_ids"]


class FirmOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    legal_name_en = serializers.CharField()
    legal_name_zh = serializers.CharField()
    country = serializers.CharField()
    role = serializers.CharField()
    kyc_status = serializers.CharField()


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        is_staff = serializers.BooleanField()
        firm = FirmOutputSerializer(allow_null=True)
        membership_role = serializers.CharField(allow_null=True)
        boards_visible = serializers.ListField(child=serializers.CharField())
        boards_tradable = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=OutputSerializer, summary="The caller: user, firm and boards")
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
        }
        return Response(self.OutputSerializer(data).data)


class BoardListApi(APIView):
    @extend_schema(responses=BoardOutputSerializer(many=True), summary="Boards the caller may see")
    def get(self, request: Request) -> Response:
        access = board_access(user=request.user)
        boards = Board.objects.filter(id__in=access.visible).order_by("id")
        return Response(BoardOutputSerializer(boards, many=True, context={"tradable_ids": access.tradable}).data)


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
