"""Which scope an API key needs for an operation (exchange.permissions.ApiKeyScope)."""

import pytest
from rest_framework.generics import ListAPIView
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from exchange.api import path_of_operations
from exchange.models import ApiKey
from exchange.permissions import ApiKeyScope


class Reading(APIView):
    def get(self, request):
        raise NotImplementedError


class Managing(APIView):
    required_scope = ApiKey.Scope.KEYS

    def post(self, request):
        raise NotImplementedError


class InheritedHandler(ListAPIView):
    required_scope = ApiKey.Scope.KEYS  # its `get` is ListAPIView's


class WhoAmI(APIView):
    required_scope = ApiKeyScope.ANY

    def get(self, request):
        raise NotImplementedError


def _required(view_class, method):
    request = getattr(APIRequestFactory(), method)("/")
    composed = getattr(view_class, "view_class", view_class)
    view = composed(**getattr(view_class, "view_initkwargs", {}))
    return ApiKeyScope.required(request, view)


@pytest.mark.parametrize(
    "view, method, scope",
    [
        (Reading, "get", "read"),
        (Reading, "head", "read"),
        (Reading, "post", "trade"),
        (Managing, "post", "keys"),
        (InheritedHandler, "get", "keys"),
        (WhoAmI, "get", ApiKeyScope.ANY),
        # one path, two operation classes: each asks its own, neither the other's
        (path_of_operations(Reading, Managing), "get", "read"),
        (path_of_operations(Reading, Managing), "head", "read"),
        (path_of_operations(Reading, Managing), "post", "keys"),
        (path_of_operations(Managing, Reading), "get", "read"),
    ],
)
def test_the_scope_an_operation_asks(view, method, scope):
    assert _required(view, method) == scope
