"""Firm administrators manage their firm's API keys in the portal."""

import re

import pytest

from exchange import services
from exchange.models import ApiKey
from tests.factories import MemberFirmFactory, login_as, member

pytestmark = pytest.mark.django_db

URL = "/portal/api-keys/"
CREATED = "/portal/api-keys/created"
ADMINS_ONLY = "Only your firm&#x27;s administrators can manage API keys."


def test_a_firm_admin_creates_a_key_and_sees_it_once(client, provider):
    # given
    login_as(client, provider)
    # when the form is sent
    response = client.post(
        URL, {"name": "ERP", "user": provider.pk, "scopes": ["read", "trade"], "lifetime_days": "30"}
    )
    # then the answer is a redirect (303: followed with a GET) to the page that shows the key
    assert response.status_code == 303 and response.url == CREATED
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["read", "trade"]
    page = client.get(CREATED)
    assert page.status_code == 200 and page["Cache-Control"].startswith("max-age=0")
    raw_key = re.search(r'id="raw-api-key" class="secret">(dxk_[^<]+)<', page.content.decode()).group(1)
    assert raw_key.startswith(f"dxk_{api_key.prefix}_")
    # the key works...
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {raw_key}").status_code == 200
    # ...and is never shown again: not on the list, not on a reload of its page, which makes no second key
    assert raw_key not in client.get(URL).content.decode()
    again = client.get(CREATED)
    assert again.status_code == 200 and raw_key not in again.content.decode()
    assert "shown only once" in again.content.decode()
    assert ApiKey.objects.count() == 1
    assert "exchange_new_api_key" not in client.session


def test_the_new_key_waits_in_the_session_only(client, provider):
    login_as(client, provider)
    client.post(URL, {"name": "ERP", "user": provider.pk, "scopes": ["read"], "lifetime_days": "30"})
    # kept on the server side until shown, never in a cookie or the redirect's URL
    assert client.session["exchange_new_api_key"]["id"] == ApiKey.objects.get().pk
    assert all("dxk_" not in morsel.value for morsel in client.cookies.values())


def test_the_created_page_shows_nothing_to_another_firm(client, provider, domestic):
    # a key of the provider's firm, somehow left in the session of another firm's administrator
    api_key, raw_key = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    login_as(client, domestic)
    session = client.session
    session["exchange_new_api_key"] = {"id": api_key.pk, "key": raw_key}
    session.save()
    assert raw_key not in client.get(CREATED).content.decode()


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
    services.api_key_create(
        firm=domestic.membership.firm, user=domestic, name="theirs", scopes=["read"], actor=domestic
    )
    mine, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="mine", scopes=["read"], actor=provider
    )
    login_as(client, provider)
    keys = list(client.get(URL).context["keys"])
    assert keys == [mine]


def test_revoking_asks_for_confirmation_first(client, provider):
    # given
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="Nightly ERP sync", scopes=["read"], actor=provider
    )
    login_as(client, provider)
    # when the revoke link is followed, then a page names the key and asks, and nothing is revoked yet
    page = client.get(f"/portal/api-keys/{api_key.pk}/revoke")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Nightly ERP sync" in html and api_key.prefix in html and 'method="post"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    # when confirmed, then it is revoked and the list says so
    response = client.post(f"/portal/api-keys/{api_key.pk}/revoke")
    assert response.status_code == 303 and response.url == URL
    assert "is revoked" in client.get(URL).content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and api_key.revoked_by == provider


def test_the_list_links_to_the_confirmation_not_a_one_click_revoke(client, provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    login_as(client, provider)
    html = client.get(URL).content.decode()
    assert f'href="/portal/api-keys/{api_key.pk}/revoke"' in html
    assert f'action="/portal/api-keys/{api_key.pk}/revoke"' not in html


def test_revoking_needs_the_csrf_token(provider):
    from django.test import Client

    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    client = Client(enforce_csrf_checks=True)
    login_as(client, provider)
    response = client.post(f"/portal/api-keys/{api_key.pk}/revoke")
    assert response.status_code == 403
    assert "security token" in response.content.decode() and 'class="site-header"' in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_an_already_revoked_key_is_not_asked_about_again(client, provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    services.api_key_revoke(api_key=api_key, actor=provider)
    login_as(client, provider)
    response = client.get(f"/portal/api-keys/{api_key.pk}/revoke", follow=True)
    assert response.redirect_chain == [(URL, 303)]
    assert "already revoked" in response.content.decode()
    response = client.post(f"/portal/api-keys/{api_key.pk}/revoke", follow=True)
    assert "already revoked" in response.content.decode()


def test_another_firms_key_is_not_found(client, provider, domestic):
    theirs, _ = services.api_key_create(
        firm=domestic.membership.firm, user=domestic, name="theirs", scopes=["read"], actor=domestic
    )
    login_as(client, provider)
    assert client.get(f"/portal/api-keys/{theirs.pk}/revoke").status_code == 404
    assert client.post(f"/portal/api-keys/{theirs.pk}/revoke").status_code == 404
    assert client.get(f"/portal/api-keys/{2**64}/revoke").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


@pytest.mark.parametrize("role", ["trader", "analyst"])
def test_traders_and_analysts_meet_the_styled_refusal(client, provider, role):
    # given a trader of the firm, and a key of it
    colleague = member(provider.membership.firm, role)
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    login_as(client, colleague)
    # when they open any key page or send its form, then the site's own 403 page says who may
    for response in (
        client.get(URL),
        client.post(URL, {"name": "x", "user": colleague.pk, "scopes": ["read"], "lifetime_days": "1"}),
        client.get(CREATED),
        client.get(f"/portal/api-keys/{api_key.pk}/revoke"),
        client.post(f"/portal/api-keys/{api_key.pk}/revoke"),
    ):
        assert response.status_code == 403
        html = response.content.decode()
        assert ADMINS_ONLY in html
        assert 'class="site-header"' in html and "<h1>403 Forbidden</h1>" not in html
        assert colleague.email in html
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


def test_the_refusal_is_in_chinese_for_chinese_readers(client, provider):
    login_as(client, member(provider.membership.firm, "trader"))
    client.cookies["django_language"] = "zh-hans"
    response = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 403
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html and "会员门户" in html


def test_staff_and_anonymous_have_no_firm_keys_page(client, ops):
    assert client.get(URL).status_code == 302
    login_as(client, ops)
    response = client.get(URL)
    assert response.status_code == 403 and ADMINS_ONLY in response.content.decode()


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


def test_the_key_pages_promise_only_what_exists(client, provider):
    login_as(client, provider)
    html = client.get(URL).content.decode().lower()
    for promise in (r"\borders?\b", r"\bstatistics\b", r"\bstatements?\b"):
        assert not re.search(promise, html), promise
    assert "manage api keys" in html and "compliance pre-checks" in html
