"""What every list and every operation does with its query parameters and pages, whatever the app: an unknown or
repeated parameter is a 400, a page size outside 1..100 is a 400, and a position of the other paging mode is a
400 rather than quietly ignored (docs/api.md, "Requests")."""

from __future__ import annotations

import pytest

from tests.factories import api_client_for, api_error, listed_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(international):
    return api_client_for(international, auth="key")


def _bad_parameter(response, name, status=400):
    assert response.status_code == status, response.content
    error = api_error(response)
    assert error["code"] == "validation_error"
    assert name in error["details"], error
    return error


@pytest.mark.parametrize(
    "path",
    ["/api/v1/products", "/api/v1/products/facets", "/api/v1/me", "/api/v1/boards", "/api/v1/compliance/filings"],
)
def test_a_parameter_the_operation_does_not_take_is_refused(client, path):
    # given a typo of a filter (`bord` for `board`)
    # when the caller sends it
    response = client.get(path, {"bord": "international"})
    # then it is named, not ignored
    _bad_parameter(response, "bord")


def test_a_parameter_given_twice_is_refused(client):
    response = client.get("/api/v1/products?page_size=10&page_size=100")
    _bad_parameter(response, "page_size")


def test_format_is_no_parameter_of_the_operations_and_html_is_not_acceptable(provider):
    # JSON answers only: DRF's `?format=` and its browsable HTML pages are off (the docs are at /api/v1/docs/).
    client = api_client_for(provider, auth="key")
    refused = client.get("/api/v1/products", {"format": "json"})
    assert refused.status_code == 400 and "format" in refused.json()["error"]["details"]
    html = client.get("/api/v1/me", HTTP_ACCEPT="text/html")
    assert html.status_code == 406 and html["Content-Type"] == "application/json"
    assert client.get("/api/v1/schema/?format=json").json()["openapi"] == "3.1.0"


def test_a_refused_parameter_answers_no_store(client):
    response = client.get("/api/v1/products", {"nope": "1"})
    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize("size", ["0", "101", "1000000", "-5", "abc", "", "1.5", " 5"])
@pytest.mark.parametrize("path", ["/api/v1/products", "/api/v1/compliance/filings", "/api/v1/my/products"])
def test_a_page_size_outside_its_range_is_refused(provider, path, size):
    response = api_client_for(provider, auth="key").get(path, {"page_size": size})
    _bad_parameter(response, "page_size")


@pytest.mark.parametrize("size", ["1", "100"])
def test_the_page_size_bounds_themselves_are_taken(provider, reviewer, client, size):
    listed_product(provider, reviewer)
    listed_product(provider, reviewer)
    response = client.get("/api/v1/products", {"page_size": size})
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(int(size), 2)


def test_a_cursor_on_an_order_paged_by_number_is_refused(client):
    # given the relevance order (computed per request), which is paged by number
    # when a cursor is sent with it
    response = client.get("/api/v1/products", {"q": "trade", "cursor": "cD0yMDI2"})
    # then the caller learns the cursor means nothing here (a rule between parameters: 422)
    _bad_parameter(response, "cursor", status=422)


def test_a_page_number_on_the_cursor_order_is_refused(client):
    response = client.get("/api/v1/products", {"sort": "newest", "page": "2"})
    _bad_parameter(response, "page", status=422)


@pytest.mark.parametrize("cursor", ["nonsense", "cD0yMDI2LTEzLTQw", "%%%"])
def test_a_cursor_the_server_did_not_issue_is_a_422(client, cursor):
    # The schema says only "a string": whether it is one of ours is a rule it cannot state.
    _bad_parameter(client.get("/api/v1/products", {"cursor": cursor}), "cursor", status=422)


def test_the_schema_documents_the_bounds_it_enforces(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    for path in ("/api/v1/products", "/api/v1/compliance/filings", "/api/v1/my/products"):
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
        assert "title" not in parameters["page_size"]


def test_a_throttled_schema_request_is_the_apis_json_error(monkeypatch):
    # given an anonymous rate of one request per minute
    from django.core.cache import cache
    from rest_framework.test import APIClient
    from rest_framework.throttling import AnonRateThrottle

    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "1/minute"})
    cache.clear()
    client = APIClient()
    assert client.get("/api/v1/schema/").status_code == 200
    # when the second comes too soon
    response = client.get("/api/v1/schema/")
    # then it is the API's error, in JSON, labelled as JSON (not under the schema's YAML media type)
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert api_error(response)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
