"""The API's one error shape for what no endpoint answers: unmatched paths (any method) and CSRF failures."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import api_client_for, api_error, login_as

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_an_unmatched_path_is_the_apis_json_404(settings, method, debug):
    settings.DEBUG = debug
    response = getattr(APIClient(enforce_csrf_checks=True), method)("/api/v1/no-such-thing/42")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert api_error(response)["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/products/%0A/draft", "/api/v1/products/1%0A/draft", "/api/v1/x%0D%0Ay"])
def test_a_path_holding_a_newline_is_the_apis_json_404_too(path):
    # The catch-all's `.` would stop at a newline, leaving such a path to Django's HTML 404 (schemathesis found it).
    response = APIClient().post(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert api_error(response)["code"] == "not_found"


def test_a_post_with_a_session_and_no_csrf_token_to_an_unmatched_path_is_still_json(provider):
    client = Client(enforce_csrf_checks=True)
    login_as(client, provider)
    response = client.post("/api/v1/products/1/nothing-here", {"x": 1})
    assert response.status_code == 404 and api_error(response)["code"] == "not_found"


def test_a_missing_slash_still_goes_on_to_the_endpoint():
    response = Client().get("/api/v1/docs?x=1")
    assert response.status_code == 301 and response["Location"] == "/api/v1/docs/?x=1"


def test_endpoints_still_answer(provider):
    assert api_client_for(provider).get("/api/v1/me").status_code == 200
    assert APIClient().get("/api/v1/me").status_code == 401


def test_a_csrf_failure_under_the_api_is_json_and_elsewhere_djangos_page(rf):
    # Django's CsrfViewMiddleware guards only non-DRF views (DRF checks CSRF itself, as a JSON 403); this is the
    # answer if one under /api/ ever refuses.
    from exchange.views import csrf_failure

    api = csrf_failure(rf.post("/api/v1/something"), reason="CSRF cookie not set.")
    assert api.status_code == 403 and api["Content-Type"] == "application/json"
    import json

    assert json.loads(api.content)["error"]["code"] == "csrf_failed"
    page = csrf_failure(rf.post("/portal/my-products/new"), reason="CSRF cookie not set.")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


class TestValidationErrors:
    """One nested-error style (dotted paths) and the 400/422 split, decided by the codes (docs/api.md)."""

    def _answer(self, exc):
        from exchange.exceptions import api_exception_handler

        return api_exception_handler(exc, {})

    def test_nested_errors_are_keyed_by_dotted_path(self):
        from rest_framework.exceptions import ValidationError

        # given DRF's nested shape: a list serializer with an error on its second item, a nested object
        exc = ValidationError(
            {
                "dictionary": [{}, {"type": ["Not a valid choice."]}],
                "licence_terms": {"purposes": {"0": ["Too long."]}},
                "title_en": ["Required."],
            }
        )
        # when the handler answers it
        response = self._answer(exc)
        # then every message is keyed by the field's path, one level deep
        assert response.data["error"]["details"] == {
            "dictionary.1.type": ["Not a valid choice."],
            "licence_terms.purposes.0": ["Too long."],
            "title_en": ["Required."],
        }

    def test_a_schema_error_is_400_even_beside_a_rule_error(self):
        from rest_framework.exceptions import ErrorDetail, ValidationError

        exc = ValidationError(
            {
                "category": [ErrorDetail("No such category.", code="does_not_exist")],
                "title_en": [ErrorDetail("This field is required.", code="required")],
            }
        )
        response = self._answer(exc)
        assert response.status_code == 400
        assert set(response.data["error"]["details"]) == {"category", "title_en"}

    def test_only_rule_errors_are_422(self):
        from rest_framework.exceptions import ErrorDetail, ValidationError

        exc = ValidationError({"category": [ErrorDetail("No such category.", code="does_not_exist")]})
        assert self._answer(exc).status_code == 422

    def test_a_services_validation_error_is_422_whatever_its_code(self):
        from django.core.exceptions import ValidationError

        response = self._answer(ValidationError({"delivery_modes": ValidationError("Pick one.", code="invalid")}))
        assert response.status_code == 422
        assert response.data["error"] == {
            "code": "validation_error",
            "message": "The request is not valid; see details.",
            "details": {"delivery_modes": ["Pick one."]},
        }

    def test_an_application_error_is_422_unless_it_says_otherwise(self):
        from exchange.exceptions import ApplicationError, InvalidTransition

        assert self._answer(ApplicationError("No.", code="no")).status_code == 422
        assert self._answer(ApplicationError("Busy.", code="busy", status_code=409)).status_code == 409
        assert self._answer(InvalidTransition("Not now.")).status_code == 409


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/products", {"title_en": "x", "colour": "blue"}),
        ("/api/v1/api-keys", {"name": "x", "scopes": ["read"], "colour": "blue"}),
    ],
)
def test_a_body_field_the_operation_does_not_take_is_a_400_naming_it(provider, path, body):
    # A misspelt optional field is refused, never silently ignored (`additionalProperties: false` in the schema).
    response = api_client_for(provider).post(path, body, format="json")
    assert response.status_code == 400
    assert "colour" in api_error(response)["details"]


def test_an_operation_that_takes_no_body_refuses_one(provider):
    client = api_client_for(provider, auth="key", scopes=("read", "trade", "keys"))
    key_id = client.get("/api/v1/api-keys").json()["results"][0]["id"]
    sent = client.post(f"/api/v1/api-keys/{key_id}/revoke", {"bogus": 1}, format="json")
    assert sent.status_code == 400 and list(api_error(sent)["details"]) == ["bogus"]
    xml = client.post(f"/api/v1/api-keys/{key_id}/revoke", "<x/>", content_type="application/xml")
    assert xml.status_code == 400 and api_error(xml)["code"] == "validation_error"
    assert client.post(f"/api/v1/api-keys/{key_id}/revoke", {}, format="json").status_code == 200


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
def test_what_django_refuses_before_any_view_is_json_under_the_api(settings, debug):
    from django.test import RequestFactory

    from exchange import views

    settings.DEBUG = debug
    if not debug:  # (a debugging server answers Django's technical page instead, on purpose)
        host = APIClient(raise_request_exception=False).get("/api/v1/me", HTTP_HOST="evil.example")
        assert host.status_code == 400 and api_error(host)["code"] == "bad_request"
    # handler400 and handler500 answer the API's shape under /api/ (too many fields, a body too large for Django...)
    for handler, status in ((views.bad_request, 400), (views.server_error, 500)):
        response = handler(RequestFactory().get("/api/v1/products"))
        assert response.status_code == status and response["Content-Type"] == "application/json"
        assert handler(RequestFactory().get("/portal/"))["Content-Type"].startswith("text/html")


def test_a_filing_reference_of_a_control_character_is_refused_as_the_schema_says(provider):
    # U+001E is white space to Python (which strips it) and not to the schema's \S: the pattern says neither.
    from exchange.api import VISIBLE

    assert not __import__("re").search(VISIBLE, "\x1e") and __import__("re").search(VISIBLE, "a")
