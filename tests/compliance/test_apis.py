"""POST /api/v1/compliance/assessments: the engine's decision, the same as the assess command's."""

import io
import json

import pytest
from django.core.management import call_command

from exchange import services
from tests.compliance.test_rules import BASE, RULE_TABLE, case
from tests.factories import login_as

pytestmark = pytest.mark.django_db
URL = "/api/v1/compliance/assessments"


@pytest.mark.parametrize("rule, changes, decision", RULE_TABLE)
def test_the_api_and_the_command_decide_alike(api_client, provider, rule, changes, decision):
    body = case(**changes)
    login_as(api_client, provider)
    response = api_client.post(URL, body, format="json")
    out = io.StringIO()
    call_command("assess", "--json", json.dumps(body), stdout=out)
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    assert response.json()["decision"] == decision


def test_a_read_scope_key_may_ask(api_client, provider):
    _, raw_key = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    response = api_client.post(URL, BASE, format="json", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert response.status_code == 200 and response.json()["rules"] == ["R16", "A10"]


def test_anonymous_callers_are_refused(api_client):
    assert api_client.post(URL, BASE, format="json").status_code == 401


@pytest.mark.parametrize(
    "body, path",
    [
        (case(product__classification="secret"), "product.classification"),
        (case(product__personal_info_subjects=-1), "product.personal_info_subjects"),
        ({"product": {}}, "exporter"),
        (case(trade__buyer_country=12), "trade.buyer_country"),
        ([1, 2, 3], "non_field_errors"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, provider, body, path):
    login_as(api_client, provider)
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and path in error["details"]


def test_malformed_json_is_a_400(api_client, provider):
    login_as(api_client, provider)
    response = api_client.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
