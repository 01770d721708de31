"""POST /api/v1/compliance/assessments with the engine's input: the engine's decision, the same as the assess
command's; the body's shape refused as the schema states it (400), every field at once, by dotted path."""

import copy
import io
import json
from dataclasses import fields

import pytest
from django.core.management import call_command

from compliance import rules
from exchange import services
from tests.compliance.test_rules import BASE, RULE_TABLE, case
from tests.factories import api_client_for as client_for
from tests.factories import api_error as error
from tests.factories import login_as

pytestmark = pytest.mark.django_db
URL = "/api/v1/compliance/assessments"
SIX_REQUIRED = [
    ("product", "classification"),
    ("product", "origin"),
    ("exporter", "country"),
    ("trade", "buyer_country"),
    ("trade", "delivery"),
]


def without(group: str, name: str) -> dict:
    body = copy.deepcopy(BASE)
    del body[group][name]
    return body


@pytest.mark.parametrize("rule, changes, decision", RULE_TABLE)
def test_the_api_and_the_command_decide_alike(api_client, provider, rule, changes, decision):
    body = case(**changes)
    login_as(api_client, provider)
    response = api_client.post(URL, body, format="json")
    out = io.StringIO()
    call_command("assess", "--json", json.dumps(body), stdout=out)
    assert response.status_code == 200
    # the same decision object, told apart from a pre-check's answer by its kind
    assert response.json() == {"kind": "decision", **json.loads(out.getvalue())}
    assert response.json()["decision"] == decision


def test_a_read_scope_key_may_ask(api_client, provider):
    _, raw_key = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    response = api_client.post(URL, BASE, format="json", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert response.status_code == 200 and response.json()["rules"] == ["R16", "A10"]


def test_a_key_without_the_read_scope_may_not(provider):
    # given a key made for trading only: asking is reading
    client = client_for(provider, "key", scopes=("trade",))
    # when
    response = client.post(URL, BASE, format="json")
    # then
    assert response.status_code == 403 and error(response)["code"] == "insufficient_scope"


def test_anonymous_callers_are_refused(api_client):
    assert api_client.post(URL, BASE, format="json").status_code == 401


def test_omitted_optional_fields_take_their_neutral_value(provider):
    # given only the six required fields
    body = {
        "product": {"classification": "general", "origin": "cn"},
        "exporter": {"country": "CN"},
        "trade": {"buyer_country": "SG", "delivery": "api"},
        "as_of": "2026-01-01",
    }
    # when
    response = client_for(provider).post(URL, body, format="json")
    # then no personal information, a commercial buyer, no exemption claimed: nothing to file
    assert response.status_code == 200, response.content
    assert (response.json()["decision"], response.json()["rules"]) == ("exempt", ["R13"])


def test_a_whole_number_sent_with_a_zero_fraction_is_that_number(provider):
    # JSON Schema's integer takes 150000.0 for 150000; so does the API (the engine takes Python ints only)
    body = case(product__personal_info_subjects=150000.0, exporter__ytd_personal_info_subjects=0.0)
    response = client_for(provider).post(URL, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "contract_or_certification"
    fraction = client_for(provider).post(URL, case(product__personal_info_subjects=1.5), format="json")
    assert fraction.status_code == 400 and "product.personal_info_subjects" in error(fraction)["details"]


def test_the_six_required_fields_are_named_in_one_answer(provider):
    # given an engine input with empty groups and no date
    body = {"product": {}, "exporter": {}, "trade": {}}
    # when
    response = client_for(provider).post(URL, body, format="json")
    # then every missing field is named, at once, by its dotted path
    assert response.status_code == 400
    assert set(error(response)["details"]) == {f"{g}.{n}" for g, n in SIX_REQUIRED} | {"as_of"}


@pytest.mark.parametrize(
    "body, path",
    [
        (case(product__classification="secret"), "product.classification"),
        (case(product__personal_info_subjects=-1), "product.personal_info_subjects"),
        (case(product__personal_info_subjects="12"), "product.personal_info_subjects"),
        (case(product__anonymised_output="true"), "product.anonymised_output"),
        (case(product__colour="red"), "product.colour"),
        ({"product": {}}, "exporter"),
        ({**BASE, "as_of": "24/11/2026"}, "as_of"),
        ({**BASE, "extra": 1}, "extra"),
        (case(trade__buyer_country=12), "trade.buyer_country"),
        (case(trade__buyer_country="sg"), "trade.buyer_country"),  # the schema's codes are capitals
        (case(exporter__country="cn"), "exporter.country"),
        (case(trade__delivery="sandbox"), "trade.delivery"),  # the exchange's mode, not the engine's
        (case(trade__buyer_type="court"), "trade.buyer_type"),
        (case(exporter__ftz_list_item={"id": "x", "mechanism": "maybe"}), "exporter.ftz_list_item"),
        *[(without(group, name), f"{group}.{name}") for group, name in SIX_REQUIRED],
        ({k: v for k, v in BASE.items() if k != "as_of"}, "as_of"),
        ([1, 2, 3], "non_field_errors"),
    ],
)
def test_a_body_that_does_not_fit_the_schema_is_a_400_naming_the_field(api_client, provider, body, path):
    login_as(api_client, provider)
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert error(response)["code"] == "validation_error" and path in error(response)["details"]


def test_every_field_is_named_in_one_answer(provider):
    body = case(product__classification="secret", exporter__country="cn", trade__delivery="pigeon")
    response = client_for(provider).post(URL, body, format="json")
    assert response.status_code == 400
    assert set(error(response)["details"]) == {"product.classification", "exporter.country", "trade.delivery"}


def test_important_data_without_its_source_is_a_rule_between_fields(provider):
    # given important data whose source is left out (a valid value: "none"): the schema cannot state the pair
    body = case(product__classification="important")
    # when
    response = client_for(provider).post(URL, body, format="json")
    # then
    assert response.status_code == 422, response.content
    assert error(response)["code"] == "validation_error"
    assert list(error(response)["details"]) == ["product.important_source"]
    # and with its source, it is decided
    body["product"]["important_source"] = "notified"
    assert client_for(provider).post(URL, body, format="json").json()["decision"] == "security_assessment"


def test_malformed_json_is_a_400(api_client, provider):
    login_as(api_client, provider)
    response = api_client.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"


# --- The schema says what the engine takes ----------------------------------------------------------------


@pytest.fixture
def components(client):
    return client.get("/api/v1/schema/?format=json").json()["components"]["schemas"]


def _enum(components, prop):
    ref = next(p["$ref"] for p in [prop, *prop.get("allOf", [])] if "$ref" in p)
    return components[ref.rsplit("/", 1)[1]]["enum"]


def test_the_engine_input_schema_is_the_engines_own(components):
    body = components["EngineInputRequest"]
    assert set(body["required"]) == {"product", "exporter", "trade", "as_of"}
    assert body["additionalProperties"] is False
    for group, cls in rules.GROUPS.items():
        schema = components[f"Engine{group.capitalize()}Request"]
        # exactly the engine's fields, the ones it requires marked required, and no other field taken
        assert set(schema["properties"]) == {f.name for f in fields(cls)}, group
        assert set(schema["required"]) == {name for g, name in rules.REQUIRED if g == group}, group
        assert schema["additionalProperties"] is False
        for (g, name), choices in rules.CHOICES.items():
            if g == group:
                assert _enum(components, schema["properties"][name]) == list(choices), (group, name)
    countries = _enum(components, components["EngineTradeRequest"]["properties"]["buyer_country"])
    assert sorted(countries) == sorted(rules.ISO_COUNTRIES)  # the schema's one CountryCode enum, by name
    mechanism = components["FtzListItemRequest"]["properties"]["mechanism"]
    assert _enum(components, mechanism) == list(rules.DECISIONS)


def test_the_answers_are_told_apart_by_their_kind(components):
    answer = components["AssessmentAnswer"]
    assert answer["discriminator"] == {
        "propertyName": "kind",
        "mapping": {
            "decision": "#/components/schemas/Decision",
            "trade_precheck": "#/components/schemas/TradePrecheck",
        },
    }
    assert components["Decision"]["properties"]["kind"]["const"] == "decision"
    assert components["TradePrecheck"]["properties"]["kind"]["const"] == "trade_precheck"
    assert _enum(components, components["Decision"]["properties"]["decision"]) == list(rules.DECISIONS)
    assert _enum(components, components["Decision"]["properties"]["direction"]) == [
        "outbound", "domestic", "inbound", "foreign"
    ]  # fmt: skip
