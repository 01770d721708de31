"""The compliance API: the rules engine's decision for the specification's inputs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.models import ApiKey
from exchange.schema import ApiErrorSerializer

from .policy import policy_from_settings
from .rules import InvalidInput, assess

EXAMPLE_INPUT = {
    "product": {"classification": "general", "origin": "cn", "personal_info_subjects": 150000},
    "exporter": {"country": "CN", "ytd_personal_info_subjects": 0},
    "trade": {"buyer_country": "SG", "delivery": "file"},
    "as_of": "2026-11-24",
}


class AssessmentCreateApi(APIView):
    """Decide a prospective transfer from plain inputs: nothing is stored, nothing is traded."""

    # Asking is reading: a read-scope key may ask, although the method is POST.
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        summary="Decide a cross-border transfer (the rules engine)",
        description=(
            "The body is the specification's input object: the groups `product`, `exporter`, `trade` and the key "
            "`as_of` (shared/compliance-rules.md); omitted fields take their neutral value. The answer is the "
            "decision object: `decision`, the `rules` that fired, `reasons` (English, Chinese, legal source), the "
            "`evidence` required, the `rule_version` and the `direction`. It is the same decision as "
            "`manage.py assess` gives for the same input."
        ),
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The decision."),
            400: OpenApiResponse(ApiErrorSerializer, description="`validation_error`: what is wrong, per field path."),
        },
        examples=[OpenApiExample("150,000 individuals to Singapore", value=EXAMPLE_INPUT, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        try:
            decision: dict[str, Any] = assess(request.data, policy_from_settings())
        except InvalidInput as exc:
            # The engine names problems by field path; a problem with the whole input has the empty path.
            raise exceptions.ValidationError(
                {(path or "non_field_errors"): [problem] for path, problem in exc.errors.items()}
            ) from None
        return Response(decision)
