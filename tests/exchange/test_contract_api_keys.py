"""A partner's key self-service through the client generated from the published schema (tests/api/contract.py):
a firm administrator's system lists, makes, reads, rotates and revokes the firm's keys and asks who it is, each
answer typed by the generated models and validated against the schema by openapi-core on the way."""

from __future__ import annotations

import pytest
from django.test import Client

from exchange import services
from tests.api.contract import generate_client, partners

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def client_package(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        schema = Client().get("/api/v1/schema/?format=json").json()
    return generate_client(schema, tmp_path_factory.mktemp("generated"))


@pytest.fixture
def partner(client_package):
    with partners(client_package) as make:
        yield make


def _typed(response, status=200):
    assert response.status_code == status, response.content[:2000]
    assert type(response.parsed).__module__.startswith("exchange_client.models"), type(response.parsed)
    return response.parsed


def test_a_firm_administrators_system_manages_its_keys(partner, provider):
    # given the administrator's management key
    _key, raw = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="ops", scopes=["read", "trade", "keys"], actor=provider
    )
    admin = partner(raw)

    # when it asks who it is, then it learns its key's scopes and expiry
    me = _typed(admin.call("me_get"))
    assert me.api_key.name == "ops" and sorted(s.value for s in me.api_key.scopes) == ["keys", "read", "trade"]
    assert me.firm.role.value == "provider" and me.membership_role.value == "firm_admin"

    # when it makes a read key, then the answer carries the key once, typed
    made = _typed(admin.call("api_keys_create", body={"name": "BI export", "scopes": ["read"]}), 201)
    assert made.key.startswith(f"dxk_{made.prefix}_") and made.is_active

    # and the list and the key itself show it, never the key
    page = _typed(admin.call("api_keys_list", page_size=10))
    assert [k.id for k in page.results][:1] == [made.id] and not hasattr(page.results[0], "key")
    assert _typed(admin.call("api_keys_get", id=made.id)).prefix == made.prefix

    # when it rotates it, then the new key works and the old one is gone
    rotated = _typed(admin.call("api_keys_rotate", id=made.id), 201)
    assert rotated.replaces == made.id and rotated.name == "BI export"
    assert _typed(partner(rotated.key).call("me_get")).api_key.id == rotated.id
    assert partner(made.key).call("me_get").status_code == 401

    # when it revokes the new one, then a second revocation is a typed conflict
    revoked = _typed(admin.call("api_keys_revoke", id=rotated.id))
    assert revoked.revoked_at is not None and not revoked.is_active
    conflict = _typed(admin.call("api_keys_revoke", id=rotated.id), 409)
    assert conflict.error.code == "invalid_transition"


def test_a_read_key_is_told_it_lacks_the_keys_scope(partner, provider):
    _key, raw = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="bi", scopes=["read"], actor=provider
    )
    refused = _typed(partner(raw).call("api_keys_list"), 403)
    assert refused.error.code == "insufficient_scope"
