"""Firm administrators manage their firm's API keys in the portal."""

import re

import pytest

from exchange import services
from exchange.models import ApiKey
from tests.factories import MemberFirmFactory, login_as, member

pytestmark = pytest.mark.django_db

URL = "/portal/api-keys/"


def test_a_firm_admin_creates_a_key_and_sees_it_once(client, provider):
    login_as(client, provider)
    response = client.post(
        URL, {"name": "ERP", "user": provider.pk, "scopes": ["read", "trade"], "lifetime_days": "30"}
    )
    assert response.status_code == 201
    html = response.content.decode()
    raw_key = re.search(r'id="raw-api-key" class="secret">(dxk_[^<]+)<', html).group(1)
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["read", "trade"] and raw_key.startswith(f"dxk_{api_key.prefix}_")
    # the key works...
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {raw_key}").status_code == 200
    # ...and is never shown again
    assert raw_key not in client.get(URL).content.decode()


def test_bad_input_is_a_form_error_and_creates_nothing(client, provider):
    login_as(client, provider)
    response = client.post(URL, {"name": "", "user": provider.pk, "scopes": [], "lifetime_days": "9999"})
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"name", "scopes", "lifetime_days"}
    assert not ApiKey.objects.exists()


def test_a_key_cannot_be_made_for_someone_outside_the_firm(client, provider, domestic):
    login_as(client, provider)
    response = client.post(URL, {"name": "x", "user": domestic.pk, "scopes": ["read"], "lifetime_days": "30"})
    assert "user" in response.context["form"].errors
    assert not ApiKey.objects.exists()


def test_the_list_shows_only_the_firms_own_keys(client, provider, domestic):
    services.api_key_create(firm=domestic.membership.firm, user=domestic, name="theirs", scopes=["read"], actor=domestic)
    mine, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="mine", scopes=["read"], actor=provider
    )
    login_as(client, provider)
    keys = list(client.get(URL).context["keys"])
    assert keys == [mine]


def test_revoking_from_the_portal(client, provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    login_as(client, provider)
    response = client.post(f"/portal/api-keys/{api_key.pk}/revoke", follow=True)
    assert "is revoked" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_another_firms_key_is_not_found(client, provider, domestic):
    theirs, _ = services.api_key_create(
        firm=domestic.membership.firm, user=domestic, name="theirs", scopes=["read"], actor=domestic
    )
    login_as(client, provider)
    assert client.post(f"/portal/api-keys/{theirs.pk}/revoke").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_traders_and_analysts_may_not_manage_keys(client, provider):
    trader = member(provider.membership.firm, "trader")
    login_as(client, trader)
    assert client.get(URL).status_code == 403
    assert (
        client.post(URL, {"name": "x", "user": trader.pk, "scopes": ["read"], "lifetime_days": "1"}).status_code == 403
    )
    assert not ApiKey.objects.exists()


def test_staff_and_anonymous_have_no_firm_keys_page(client, ops):
    assert client.get(URL).status_code == 302
    login_as(client, ops)
    assert client.get(URL).status_code == 404


def test_the_portal_home_links_admins_to_their_keys(client, provider):
    login_as(client, provider)
    assert URL in client.get("/portal/").content.decode()
    trader = member(provider.membership.firm, "trader")
    login_as(client, trader)
    assert URL not in client.get("/portal/").content.decode()


def test_api_throttling_is_per_key(api_client, provider, monkeypatch):
    from exchange.throttling import ClientRateThrottle

    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"client": "3/minute"})
    firm = provider.membership.firm
    _, first = services.api_key_create(firm=firm, user=provider, name="a", scopes=["read"], actor=provider)
    _, second = services.api_key_create(firm=firm, user=provider, name="b", scopes=["read"], actor=provider)
    for _ in range(3):
        assert api_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {first}").status_code == 200
    throttled = api_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {first}")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert throttled.json()["error"]["details"]["retry_after_seconds"] > 0
    assert api_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {second}").status_code == 200


def test_another_firm_member_cannot_see_keys_page_of_other_firm(client, provider):
    outsider = member(MemberFirmFactory(), "firm_admin")
    services.api_key_create(firm=provider.membership.firm, user=provider, name="p", scopes=["read"], actor=provider)
    login_as(client, outsider)
    assert list(client.get(URL).context["keys"]) == []


def test_a_firm_at_its_key_limit_is_told_to_revoke_one(client, provider, settings):
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 1
    services.api_key_create(firm=provider.membership.firm, user=provider, name="ERP", scopes=["read"], actor=provider)
    login_as(client, provider)
    response = client.post(URL, {"name": "BI", "user": provider.pk, "scopes": ["read"], "lifetime_days": "30"})
    assert response.status_code == 200
    assert "the most a firm may hold; revoke one first" in response.content.decode()
    assert ApiKey.objects.count() == 1
