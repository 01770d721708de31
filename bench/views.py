"""Baseline endpoints, served by the same server in the same run as the product's views."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

PAYLOAD = {"status": "ok", "service": "bench", "version": 1}


def plain(request: HttpRequest) -> JsonResponse:
    """The floor: Django's middleware and a `JsonResponse`, no authentication, no database."""
    return JsonResponse(PAYLOAD)


class DrfAnonymousApi(APIView):
    """The same DRF view with no authentication and no permission: DRF's own cost, without the API key's."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


class DrfTrivialApi(APIView):
    """A DRF view with the API's default authentication and permissions (an API key), and nothing else."""

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)
