"""POST /api/v1/compliance/assessments with a product id: the pre-check of a trade by the caller's firm.

Who may ask (members, through a session or an API key of either scope), about what (a listed product their
firm may see, never its own), what they hear (cleared, held, prohibited, with the inputs the exchange
gathered), that nothing is written, and that a body not fitting the schema is a 400, a rule the schema cannot
state a 422 and a product not listed now a 409.
"""

from datetime import date

import pytest
from django.urls import get_resolver
from jsonschema import Draft202012Validator

from compliance import services
from compliance.models import Assessment, ComplianceCase, EvidenceKind, ExportCounter, RestrictedParty
from exchange.models import AuditEvent
from listings import services as listing_services
from tests.compliance.factories import filing, with_pi
from tests.factories import MemberFirmFactory, admit, draft_product, listed_product, member
from tests.factories import api_client_for as client_for
from tests.factories import api_error as error

pytestmark = pytest.mark.django_db

URL = "/api/v1/compliance/assessments"
DAY = "2026-06-01"
CONTRACT_PACK = (EvidenceKind.STANDARD_CONTRACT, EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD)
STAFF = ["reviewer", "officer", "ops", "clerk", "superuser"]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def ask(client, product, delivery="file", as_of=DAY, **extra):
    body = {"product": product if isinstance(product, (int, str)) else product.pk, "delivery": delivery, **extra}
    if as_of is not None:
        body["as_of"] = as_of
    return client.post(URL, body, format="json")


def written() -> tuple[int, int, int, int]:
    return (
        Assessment.objects.count(),
        ComplianceCase.objects.count(),
        ExportCounter.objects.count(),
        AuditEvent.objects.count(),
    )


@pytest.fixture
def pi_product(provider, reviewer):
    """An international product with 150,000 individuals: a standard contract, PIPIA and consent are needed."""
    return with_pi(listed_product(provider, reviewer), 150_000)


# --- Who may ask ---------------------------------------------------------------------------------------


def test_anonymous_callers_get_401(api_client, pi_product):
    response = ask(api_client, pi_product)
    assert response.status_code == 401 and error(response)["code"] == "not_authenticated"


@pytest.mark.parametrize("persona", STAFF)
def test_staff_have_no_firm_to_buy_for(request, pi_product, persona):
    # given a staff member, who may well see the product (listing reviewers do)
    client = client_for(request.getfixturevalue(persona))
    # when they ask, even with a malformed body
    responses = [ask(client, pi_product), ask(client, "abc", delivery="fax")]
    # then
    for response in responses:
        assert response.status_code == 403 and error(response)["code"] == "no_firm"


@pytest.mark.parametrize("auth", ["session", "key"])
@pytest.mark.parametrize("persona, visible", [("international", True), ("domestic", False), ("unadmitted", False)])
def test_members_ask_about_what_their_firm_sees_and_nothing_else(request, pi_product, persona, visible, auth):
    # given a read-only key is enough: asking is reading
    client = client_for(request.getfixturevalue(persona), auth, scopes=("read",))
    missing = ask(client, 10**9)
    assert missing.status_code == 404 and error(missing)["code"] == "not_found"
    # when
    response = ask(client, pi_product)
    # then a product the firm may not see is exactly as missing as one that does not exist
    if visible:
        assert response.status_code == 200, response.content
        assert response.json()["product"] == pi_product.pk
    else:
        assert response.status_code == 404 and response.json() == missing.json()


def test_a_firms_own_product_is_no_trade(provider, pi_product):
    response = ask(client_for(provider), pi_product)
    assert response.status_code == 422 and error(response)["code"] == "own_product"
    assert "product" in error(response)["details"]


def test_a_product_in_public_notice_is_not_yet_tradable(provider, reviewer, international):
    # given a first revision approved and in public notice: the board's members see it, to object
    product = draft_product(provider)
    listing_services.product_submit(product=product, actor=provider)
    listing_services.review_start(product=product, actor=reviewer)
    listing_services.review_approve(product=product, actor=reviewer)
    client = client_for(international)
    assert client.get(f"/api/v1/products/{product.pk}").status_code == 200
    # when
    response = ask(client, product)
    # then the product's state does not allow a trade now
    assert response.status_code == 409 and error(response)["code"] == "not_listed"
    assert "product" in error(response)["details"]


# --- What they hear ------------------------------------------------------------------------------------


def test_held_names_what_is_missing_and_gathers_the_inputs(pi_product, international):
    before = written()
    # when
    response = ask(client_for(international), pi_product)
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] == "contract_or_certification" and body["rules"] == ["R15", "A10"]
    assert body["direction"] == "outbound" and body["rule_version"]
    assert {r["rule"] for r in body["reasons"]} == {"R15", "A10"}
    assert [e["kind"] for e in body["evidence"]] == list(CONTRACT_PACK)
    assert body["status"] == "held" and body["cleared"] is False and body["on_file"] == []
    assert [m["kind"] for m in body["missing"]] == list(CONTRACT_PACK)
    assert body["missing"][0]["alternatives"] == ["certification"]
    assert body["case"] is None and body["delivery"] == "file" and body["kind"] == "trade_precheck"
    inputs = body["inputs"]
    assert inputs["product"]["personal_info_subjects"] == 150_000
    # the provider's own business (its yearly counts, whether it is a CIIO) is not the buyer's to read
    assert inputs["exporter"]["country"] == "CN"
    assert not {"ytd_personal_info_subjects", "ytd_sensitive_personal_info_subjects", "is_ciio"} & set(
        inputs["exporter"]
    )
    assert inputs["trade"] == {
        "buyer_country": "SG", "delivery": "file", "buyer_type": "commercial", "buyer_restricted": False,
        "buyer_china_linked": None,
    }  # fmt: skip
    assert inputs["as_of"] == DAY
    # and asking wrote nothing: no decision, no case, no counter, no audit row
    assert written() == before


def test_held_with_the_case_that_already_holds_it(pi_product, international):
    # given the trade was tried once and held (the gate opened a case)
    held = services.trade_decide(
        product=pi_product, buyer_firm=international.membership.firm, delivery="file", as_of=date(2026, 6, 1)
    )
    # when
    body = ask(client_for(international), pi_product).json()
    # then
    assert body["status"] == "held" and body["case"] == held.case.pk


def test_cleared_once_the_officer_accepted_the_evidence(pi_product, provider, officer, international):
    # given the three items on file, accepted by a compliance officer
    filed = {
        kind: filing(
            provider, kind, accepted_by=officer, receipt_reference="SH-2026-1", receipt_filed_on=date(2026, 1, 9)
        )
        for kind in CONTRACT_PACK
    }
    client = client_for(international, "key", scopes=("read",))
    before = written()
    # when
    body = ask(client, pi_product).json()
    # then
    assert body["status"] == "cleared" and body["cleared"] is True and body["missing"] == []
    assert {(row["kind"], row["expires_on"]) for row in body["on_file"]} == {
        (k, f.expires_on.isoformat() if f.expires_on else None) for k, f in filed.items()
    }
    assert not any("filing" in row or "reference" in row for row in body["on_file"])  # the provider's own records
    assert {row["filed_as"] for row in body["on_file"]} == set(CONTRACT_PACK) and all(
        row["case"] is None for row in body["on_file"]
    )
    assert written() == before
    # and the delivery date counts: before the filings were issued, nothing covered the trade
    early = ask(client, pi_product, as_of="2026-01-02").json()
    assert early["status"] == "held" and len(early["missing"]) == 3


def test_a_submitted_filing_is_not_yet_evidence(pi_product, provider, international):
    for kind in CONTRACT_PACK:
        filing(provider, kind, receipt_reference="SH-2026-1", receipt_filed_on=date(2026, 1, 9))
    body = ask(client_for(international), pi_product).json()
    assert body["status"] == "held" and len(body["missing"]) == 3


def test_no_personal_information_is_cleared_with_nothing_to_file(provider, reviewer, international):
    product = listed_product(provider, reviewer, delivery_modes=["file", "api"])
    body = ask(client_for(international), product, delivery="api", as_of=None).json()
    assert body["status"] == "cleared" and body["rules"] == ["R13"] and body["evidence"] == []


def test_a_sandbox_trade_of_personal_information_is_not_taken_as_anonymised(provider, reviewer, international):
    # the sandbox's rules need an identifier, so personal information: its thresholds do not yet stop every
    # combination of queries (docs/architecture.md, "Sandbox"), so the gate applies the personal-information rules,
    # never the sandbox exemption (R6)
    product = listed_product(provider, reviewer, delivery_modes=["file", "sandbox"])
    body = ask(client_for(international), product, delivery="sandbox", as_of=None).json()
    assert "R6" not in body["rules"] and body["status"] != "cleared"
    assert body["inputs"]["trade"]["delivery"] == "sandbox_results_only"
    assert body["inputs"]["product"]["anonymised_output"] is False
    assert body["delivery"] == "sandbox"


def test_a_delivery_mode_the_product_does_not_offer_is_refused(provider, reviewer, international):
    product = listed_product(provider, reviewer, delivery_modes=["file"])
    response = ask(client_for(international), product, delivery="api")
    # then the body fits the schema ("api" is a delivery mode) and breaks the product's offer
    assert response.status_code == 422 and error(response)["code"] == "delivery_not_offered"
    assert "delivery" in error(response)["details"]


def test_a_restricted_buyer_is_prohibited(pi_product, international, superuser):
    # given the buyer's name on a restricted-party list
    services.party_save(
        party=RestrictedParty(name="OVERSEAS BUYER PTE LTD", country="SG", source_list="Test list"), actor=superuser
    )
    before = written()
    # when
    body = ask(client_for(international), pi_product).json()
    # then
    assert body["status"] == "prohibited" and body["decision"] == "prohibited" and body["rules"][0] == "R3"
    assert body["cleared"] is False and body["inputs"]["trade"]["buyer_restricted"] is True
    assert written() == before


def test_a_foreign_judicial_authority_is_prohibited_without_a_prc_approval(pi_product, superuser):
    # given a buyer that is a foreign judicial authority
    court = member(
        admit(MemberFirmFactory(country="DE", role="buyer", is_judicial_authority=True), "international"),
        "firm_admin",
    )
    # when
    body = ask(client_for(court), pi_product).json()
    # then
    assert body["status"] == "prohibited" and body["rules"][0] == "R2"
    assert body["missing"] == [{"kind": "prc_approval", "alternatives": []}]
    assert body["inputs"]["trade"]["buyer_type"] == "foreign_authority"


# --- Bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"product": "abc", "delivery": "file"}, "product"),
        ({"product": 1.5, "delivery": "file"}, "product"),
        ({"product": True, "delivery": "file"}, "product"),
        ({"product": -1, "delivery": "file"}, "product"),
        ({"product": 0, "delivery": "file"}, "product"),
        ({"product": 10**20, "delivery": "file"}, "product"),
        ({"product": None, "delivery": "file"}, "product"),
        ({"product": [1], "delivery": "file"}, "product"),
        ({"product": "PRODUCT", "delivery": "file"}, "product"),
        ({"product": "42", "delivery": "file"}, "product"),  # an id is a JSON integer, not its digits
        ({"product": "<id>", "delivery": "sandbox_results_only"}, "delivery"),  # the engine's value, not a mode
        ({"product": "<id>", "delivery": "file", "asof": "2026-06-01"}, "asof"),  # a typo is not ignored
        ({"product": "<id>", "delivery": "fax"}, "delivery"),
        ({"product": "<id>"}, "delivery"),
        ({"product": "<id>", "delivery": ["file"]}, "delivery"),
        ({"product": "<id>", "delivery": "file", "as_of": "garbage"}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": "2026-02-30"}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": 20260601}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": "20260601"}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": "1999-12-31"}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": "2101-01-01"}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": "9999-12-31"}, "as_of"),
        ({"product": "<id>", "delivery": "file", "as_of": "0001-01-01"}, "as_of"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(pi_product, international, body, field):
    body = {k: (pi_product.pk if v == "<id>" else v) for k, v in body.items()}
    before = written()
    response = client_for(international).post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert error(response)["code"] == "validation_error" and field in error(response)["details"], error(response)
    assert written() == before


def test_an_id_with_a_zero_fraction_is_that_id(pi_product, international):
    response = client_for(international).post(URL, {"product": float(pi_product.pk), "delivery": "file"}, format="json")
    assert response.status_code == 200 and response.json()["product"] == pi_product.pk


def test_nan_and_huge_numbers_in_the_raw_body_are_400(pi_product, international):
    client = client_for(international)
    for raw in ('{"product": NaN, "delivery": "file"}', '{"product": 1e309, "delivery": "file"}'):
        response = client.post(URL, raw, content_type="application/json")
        assert response.status_code == 400, (raw, response.content)


def test_the_engines_own_input_is_still_decided_as_before(international):
    # given an object for `product`: the specification's input, not a pre-check
    body = {
        "product": {"classification": "general", "origin": "cn", "personal_info_subjects": 150000},
        "exporter": {"country": "CN"},
        "trade": {"buyer_country": "SG", "delivery": "file"},
        "as_of": DAY,
    }
    response = client_for(international).post(URL, body, format="json")
    assert response.status_code == 200
    assert response.json()["decision"] == "contract_or_certification" and "status" not in response.json()


# --- The schema -----------------------------------------------------------------------------------------


def test_every_compliance_route_is_documented(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    patterns = [p for p in get_resolver().url_patterns if getattr(p, "namespace", None) == "compliance-api"]
    routes = {str(p.pattern) for include in patterns for p in include.url_patterns}
    documented = {path.removeprefix("/api/v1/compliance/").replace("{id}", "<int:pk>") for path in schema["paths"]}
    assert routes and routes <= documented, routes - documented
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/compliance/"):
            continue
        for method, operation in operations.items():
            assert operation.get("summary"), (path, method)
            assert {"200", "201"} & set(operation["responses"]), (path, method)
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert "401" in errors, (path, method)
            for response in errors.values():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ApiError"), (path, method)
    precheck = schema["components"]["schemas"]["TradePrecheckInputRequest"]
    assert precheck["properties"]["product"]["type"] == "integer"
    assert precheck["required"] == ["delivery", "product"] and precheck["additionalProperties"] is False
    assessment = schema["paths"]["/api/v1/compliance/assessments"]["post"]
    assert assessment["operationId"] == "compliance_assess" and assessment["requestBody"]["required"] is True
    upload = schema["paths"]["/api/v1/compliance/filings"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data"}


def _matches(schema, name, instance):
    """The schemas of the oneOf `name` that `instance` is valid against (strict JSON Schema 2020-12)."""
    found = []
    for option in schema["components"]["schemas"][name]["oneOf"]:
        root = {**option, "components": schema["components"]}
        if Draft202012Validator(root).is_valid(instance):
            found.append(option["$ref"].rsplit("/", 1)[1])
    return found


def test_each_answer_and_body_matches_exactly_one_schema(client, pi_product, international):
    # given the schema and a member's client
    schema = client.get("/api/v1/schema/?format=json").json()
    member = client_for(international)
    engine_input = {
        "product": {"classification": "general", "origin": "cn", "personal_info_subjects": 150000},
        "exporter": {"country": "CN"},
        "trade": {"buyer_country": "SG", "delivery": "file"},
        "as_of": DAY,
    }
    precheck = {"product": pi_product.pk, "delivery": "file", "as_of": DAY}
    # when it asks both ways
    decision = member.post(URL, engine_input, format="json").json()
    answer = member.post(URL, precheck, format="json").json()
    # then each body is one of the two, and so is each answer, the one its kind names
    assert _matches(schema, "AssessmentRequest", engine_input) == ["EngineInputRequest"]
    assert _matches(schema, "AssessmentRequest", precheck) == ["TradePrecheckInputRequest"]
    assert _matches(schema, "AssessmentAnswer", decision) == ["Decision"] and decision["kind"] == "decision"
    assert _matches(schema, "AssessmentAnswer", answer) == ["TradePrecheck"] and answer["kind"] == "trade_precheck"


def test_the_schemas_examples_are_bodies_it_takes(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    content = schema["paths"]["/api/v1/compliance/assessments"]["post"]["requestBody"]["content"]
    examples = {name: example["value"] for name, example in content["application/json"]["examples"].items()}
    assert len(examples) == 2
    assert sorted(match for value in examples.values() for match in _matches(schema, "AssessmentRequest", value)) == [
        "EngineInputRequest",
        "TradePrecheckInputRequest",
    ]


def test_the_precheck_example_clears_a_demo_buyer():
    # given the demo exchange, where the example's product 1 is "China export flows by HS code" when seeded
    # into a fresh database (elsewhere its id differs, as the example says: it is looked up by title here)
    from django.core.management import call_command
    from django.test import Client

    from exchange.models import User
    from listings.models import DataProduct

    call_command("seed_demo", quiet=True)
    schema = Client().get("/api/v1/schema/?format=json").json()
    content = schema["paths"]["/api/v1/compliance/assessments"]["post"]["requestBody"]["content"]
    example = next(
        e for e in content["application/json"]["examples"].values() if isinstance(e["value"]["product"], int)
    )
    product = DataProduct.objects.get(listed_revision__title_en="China export flows by HS code")
    assert "China export flows by HS code" in example["description"]
    # when the demo buyer sends it
    response = client_for(User.objects.get(email="admin@pacific.example")).post(
        URL, {**example["value"], "product": product.pk}, format="json"
    )
    # then
    assert response.status_code == 200, response.content
    assert response.json()["kind"] == "trade_precheck" and response.json()["status"] == "cleared"
