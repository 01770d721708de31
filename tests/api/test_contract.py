"""The partner's contract (issue: a schema that generated clients can use): the published schema, a client
generated from it, the flows a partner runs through that client with every answer validated against the schema,
and schemathesis with every check as a buyer and as a provider.

New endpoints join these tests by being in the schema: the client is generated whole and imported whole, the
schema rules below apply to every operation, and schemathesis runs every operation.
"""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from exchange import services as exchange_services
from exchange.models import User
from exchange.selectors import user_membership

from .contract import iter_operations, schemathesis_run

# Examples per operation and phase: enough for every phase (examples, coverage, fuzzing, stateful) to reach each
# operation's parsers, validators and services; few enough for CI on two databases.
SCHEMATHESIS_EXAMPLES = 15

GENERIC_SUFFIXES = re.compile(r"_(create|retrieve|partial_update|update_partial|destroy)$")


class TestTheSchema:
    def test_is_openapi_31_with_servers(self, schema):
        assert schema["openapi"] == "3.1.0"
        assert schema["servers"] and schema["servers"][0]["url"].startswith("http")

    def test_operation_ids_are_readable(self, schema):
        ids = [operation["operationId"] for _m, _p, operation in iter_operations(schema)]
        assert len(ids) == len(set(ids))
        assert not [i for i in ids if GENERIC_SUFFIXES.search(i) and not i.endswith(("s_create", "_plans_create"))]

    def test_every_operation_documents_the_generic_statuses_in_the_one_error_shape(self, schema):
        for method, path, operation in iter_operations(schema):
            responses = operation["responses"]
            for status in ("400", "401", "429"):
                assert status in responses, (method, path, status)
            success = next(r for s, r in responses.items() if s.startswith("2"))
            if "application/json" in success.get("content", {"application/json": None}):
                assert "406" in responses, (method, path)
            if any(p["in"] == "path" for p in operation.get("parameters", [])):
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(responses), (method, path)
                # A PATCH changes the fields it is given: no body changes nothing, and is not a mistake.
                assert method == "PATCH" or operation["requestBody"].get("required") is True, (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    content = response["content"]
                    assert list(content) == ["application/json"], (method, path, status)
                    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}
            assert "Retry-After" in responses["429"]["headers"]

    def test_one_media_type_per_body_and_multipart_only_for_files(self, schema):
        for method, path, operation in iter_operations(schema):
            body = operation.get("requestBody")
            if body is None:
                continue
            (media_type,) = body["content"]
            if media_type == "multipart/form-data":
                properties = _resolve(schema, body["content"][media_type]["schema"])["properties"]
                assert any(p.get("format") == "binary" or "contentMediaType" in p for p in properties.values()), path
            else:
                assert media_type == "application/json", (method, path)

    def test_every_request_body_takes_exactly_its_fields(self, schema):
        for method, path, operation in iter_operations(schema):
            for content in operation.get("requestBody", {}).get("content", {}).values():
                body = _resolve(schema, content["schema"])
                for member in [_resolve(schema, m) for m in body.get("oneOf", [])] or [body]:
                    assert member.get("additionalProperties") is False, (method, path)

    def test_parameters_have_descriptions_and_no_titles(self, schema):
        for method, path, operation in iter_operations(schema):
            for parameter in operation.get("parameters", []):
                assert "title" not in parameter["schema"], (method, path, parameter["name"])
                assert parameter.get("description"), (method, path, parameter["name"])


def _resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _key(email: str, scopes: list[str]) -> str:
    user = User.objects.get(email=email)
    membership = user_membership(user)
    admin = membership.firm.memberships.filter(role="firm_admin").first().user
    _key, raw = exchange_services.api_key_create(
        firm=membership.firm, user=user, name=f"contract {email}", scopes=scopes, actor=admin
    )
    return raw


@pytest.mark.django_db(transaction=True)
def test_schemathesis_with_every_check_finds_nothing_as_a_buyer_or_a_provider(live_server, tmp_path, monkeypatch):
    """`st run --checks all` against the demo exchange, as the partner ran it."""
    from exchange.throttling import ClientRateThrottle

    # A fuzzer is no abuser: the per-key rate would only turn its later requests into 429s.
    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"client": "1000000/minute"})
    # given the demo exchange, and a key of a foreign buyer and one of a Chinese provider
    call_command("seed_demo", quiet=True)
    buyer = _key("admin@pacific.example", ["read", "trade"])
    provider = _key("admin@lingang.example", ["read", "trade"])
    reports = []
    for role, key in (("buyer", buyer), ("provider", provider)):
        # when schemathesis runs every phase and every check against the live server
        result = schemathesis_run(live_server.url, key, max_examples=SCHEMATHESIS_EXAMPLES, workdir=tmp_path)
        if result.returncode != 0:
            reports.append(f"--- as the {role} ---\n{result.stdout[-20000:]}\n{result.stderr[-3000:]}")
    # then it finds nothing, for either
    assert not reports, "\n".join(reports)
