"""The catalogue's part of the published contract: what a generated client reads in the schema (named enums,
true nullability, readable operation ids, parameters with descriptions and no titles) is what the server
does, and a sample downloads as bytes."""

import pytest

from tests.factories import SAMPLE_CSV, draft_product
from tests.factories import api_client_for as client_for
from tests.factories import api_error as error

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products"
CATALOGUE_PATHS = ("/api/v1/products", "/api/v1/my/", "/api/v1/categories")


@pytest.fixture
def schema(client):
    return client.get("/api/v1/schema/?format=json").json()


def _operations(schema):
    for path, item in schema["paths"].items():
        if path.startswith(CATALOGUE_PATHS):
            for method, operation in item.items():
                yield path, method, operation


def test_operation_ids_are_the_contracts(schema):
    ids = {operation["operationId"] for _path, _method, operation in _operations(schema)}
    assert ids == {
        "categories_list", "products_list", "products_facets", "products_get", "products_create",
        "products_update", "products_sample_download", "products_sample_upload", "products_dataset_get",
        "products_dataset_upload", "products_submit",
        "products_withdraw", "products_draft_start", "products_plans_list", "products_plans_create",
        "products_plans_retire", "my_products_list",
    }  # fmt: skip


def test_parameters_have_descriptions_and_no_titles(schema):
    for path, method, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            assert "title" not in parameter["schema"], (path, method, parameter["name"])
            if parameter["in"] == "query":
                assert parameter.get("description"), (path, method, parameter["name"])


def test_closed_sets_are_named_enums(schema):
    components = schema["components"]["schemas"]
    parameters = {p["name"]: p["schema"] for p in schema["paths"][PRODUCTS]["get"]["parameters"]}
    assert parameters["board"] == {"$ref": "#/components/schemas/BoardCode"}
    assert parameters["currency"] == {"$ref": "#/components/schemas/Currency"}
    assert parameters["provider_country"] == {"$ref": "#/components/schemas/CountryCode"}
    # a real boolean, written true/false in the query
    assert parameters["contains_personal_info"] == {"type": "boolean"}
    assert parameters["price_min"]["pattern"] and parameters["q"]["maxLength"] == 200
    detail = components["ProductDetailApiOutput"]["properties"]
    assert detail["listing_status"] == {"$ref": "#/components/schemas/ListingStatus"}
    assert "unlisted" in components["ListingStatus"]["enum"]
    assert detail["board"] == {"$ref": "#/components/schemas/BoardCode"}
    plan = components["PlanOutput"]["properties"]
    assert plan["currency"] == {"$ref": "#/components/schemas/Currency"}
    assert {"$ref": "#/components/schemas/PlanPeriod"} in plan["period"]["oneOf"]
    request = components["ProductCreateApiInputRequest"]["properties"]
    assert request["delivery_modes"]["items"] == {"$ref": "#/components/schemas/DeliveryMode"}
    assert request["board"]["allOf"] == [{"$ref": "#/components/schemas/BoardCode"}]
    assert components["DictionaryFieldRequest"]["properties"]["type"] == {"$ref": "#/components/schemas/FieldType"}
    revision = components["RevisionOutput"]["properties"]
    assert revision["update_frequency"] == {"$ref": "#/components/schemas/UpdateFrequency"}
    assert revision["important_source"] == {"$ref": "#/components/schemas/ImportantSource"}


def test_nullable_objects_are_one_of_with_null(schema):
    detail = schema["components"]["schemas"]["ProductDetailApiOutput"]
    assert detail["properties"]["open_revision"]["oneOf"] == [
        {"$ref": "#/components/schemas/RevisionSummary"},
        {"type": "null"},
    ]
    assert "open_revision" in detail["required"]


def test_only_the_file_uploads_take_multipart(schema):
    for path, method, operation in _operations(schema):
        if "requestBody" in operation:
            expected = (
                ["multipart/form-data"]
                if operation["operationId"] in ("products_sample_upload", "products_dataset_upload")
                else ["application/json"]
            )
            assert list(operation["requestBody"]["content"]) == expected, (path, method)


def test_the_sample_is_a_binary_download(schema):
    content = schema["paths"][f"{PRODUCTS}/{{id}}/sample"]["get"]["responses"]["200"]["content"]
    # a generated client reads the first media type it knows: octet-stream, as bytes
    assert next(iter(content)) == "application/octet-stream"
    assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}


def test_the_sample_answers_octet_stream_to_a_client_that_prefers_it(provider):
    # given a draft with a CSV sample
    product = draft_product(provider)
    client = client_for(provider, "key")

    # when a client asks for bytes, or for anything
    as_bytes = client.get(f"{PRODUCTS}/{product.pk}/sample", HTTP_ACCEPT="application/octet-stream")
    anything = client.get(f"{PRODUCTS}/{product.pk}/sample")

    # then the same file, under the media type asked for or the real one
    assert as_bytes.status_code == anything.status_code == 200
    assert as_bytes["Content-Type"] == "application/octet-stream"
    assert anything["Content-Type"].startswith("text/csv")
    assert b"".join(as_bytes.streaming_content) == b"".join(anything.streaming_content) == SAMPLE_CSV


@pytest.mark.parametrize(
    "params, field",
    [
        ({"board": ""}, "board"),
        ({"category": ""}, "category"),
        ({"price_min": ""}, "price_min"),
        ({"price_min": "1e2"}, "price_min"),
        ({"price_max": " 5"}, "price_max"),
        ({"contains_personal_info": "1"}, "contains_personal_info"),
        ({"contains_personal_info": ""}, "contains_personal_info"),
        ({"q": "a\x00b"}, "q"),
        ({"category": "trade\n"}, "category"),  # the schema's `$` is the end of the text
        ({"price_min": "5\n"}, "price_min"),
        ({"sort": ""}, "sort"),
    ],
)
def test_empty_and_malformed_filters_are_400(catalogue, international, params, field):
    response = client_for(international).get(PRODUCTS, params)
    assert response.status_code == 400, response.content
    assert field in error(response)["details"]


def test_an_empty_revision_parameter_is_400(provider):
    product = draft_product(provider)
    for suffix in ("", "/sample"):
        response = client_for(provider).get(f"{PRODUCTS}/{product.pk}{suffix}", {"revision": ""})
        assert response.status_code == 400 and "revision" in error(response)["details"]


def test_a_price_filter_above_every_price_is_no_error(catalogue, international):
    response = client_for(international).get(PRODUCTS, {"price_min": "999999999999.99"})
    assert response.status_code == 200 and response.json()["results"] == []
