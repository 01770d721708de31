"""Who may see what: every persona against the portal, the API and the admin.

A row per (persona, door) with the status and, for the lists, exactly which boards come back.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from exchange import services
from tests.factories import login_as

pytestmark = pytest.mark.django_db

MEMBERS = ["unadmitted", "domestic", "international", "provider"]
STAFF = ["ops", "reviewer", "officer", "clerk", "superuser"]

EXPECTED_BOARDS = {
    "unadmitted": ([], []),
    "domestic": (["domestic"], ["domestic"]),
    "international": (["international"], ["international"]),
    "provider": (["domestic", "international"], ["domestic", "international"]),
    "ops": (["domestic", "international"], []),
    "reviewer": (["domestic", "international"], []),
    "officer": (["domestic", "international"], []),
    "clerk": (["domestic", "international"], []),
    "superuser": (["domestic", "international"], []),
}

# admin path -> personas that get 200; other staff get 403, members and anonymous a log-in redirect
ADMIN_DOORS = {
    "/admin/": set(STAFF),
    "/admin/exchange/memberfirm/": set(STAFF),
    "/admin/exchange/board/": set(STAFF),
    "/admin/exchange/auditevent/": {"ops", "officer", "reviewer", "clerk", "superuser"},
    "/admin/exchange/apikey/": {"ops", "superuser"},
    "/admin/exchange/user/": {"ops", "superuser"},
    "/admin/exchange/outboxevent/": {"ops", "superuser"},
    "/admin/compliance/compliancecase/": {"ops", "officer", "reviewer", "clerk", "superuser"},
    "/admin/compliance/filing/": {"ops", "officer", "superuser"},
    "/admin/compliance/ftzlist/": {"ops", "officer", "superuser"},
    "/admin/compliance/restrictedparty/": {"ops", "officer", "superuser"},
    "/admin/compliance/assessment/": {"ops", "officer", "reviewer", "clerk", "superuser"},
    "/admin/compliance/exportcounter/": {"ops", "officer", "superuser"},
    "/admin/settlements/order/": {"ops", "officer", "clerk", "superuser"},
    "/admin/settlements/accessrequest/": {"ops", "clerk", "superuser"},
    "/admin/settlements/deposit/": {"ops", "clerk", "superuser"},
    "/admin/settlements/deposit/add/": {"clerk", "superuser"},
    "/admin/settlements/bankstatement/": {"ops", "clerk", "superuser"},
    "/admin/settlements/bankstatement/add/": {"clerk", "superuser"},
    "/admin/settlements/withdrawal/": {"ops", "clerk", "superuser"},
    "/admin/settlements/feeschedule/": {"ops", "clerk", "superuser"},
    "/admin/settlements/feeschedule/add/": {"clerk", "superuser"},
    "/admin/settlements/fxrate/": {"ops", "clerk", "superuser"},
    "/admin/settlements/fxrate/add/": {"clerk", "superuser"},
    "/admin/settlements/fxrate/import/": {"clerk", "superuser"},
    "/admin/settlements/journalentry/": {"ops", "clerk", "superuser"},
    "/admin/settlements/account/": {"ops", "clerk", "superuser"},
    "/admin/settlements/trial-balance/": {"ops", "clerk", "superuser"},
}


@pytest.fixture
def persona(request, boards):
    return request.getfixturevalue(request.param)


class TestAnonymous:
    def test_portal_redirects_to_log_in(self, client):
        response = client.get("/portal/")
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")

    @pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/boards"])
    def test_api_answers_401_with_the_error_shape(self, api_client, path):
        response = api_client.get(path)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Api-Key"
        assert response.json()["error"]["code"] == "not_authenticated"

    @pytest.mark.parametrize("path", list(ADMIN_DOORS))
    def test_admin_redirects_to_its_log_in(self, client, path):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response.url

    def test_public_pages_are_public(self, client):
        assert client.get("/").status_code == 200
        assert client.get("/accounts/login/").status_code == 200
        assert client.get("/api/v1/docs/").status_code == 200
        assert client.get("/api/v1/schema/").status_code == 200


@pytest.mark.parametrize("persona", MEMBERS + STAFF, indirect=True)
def test_portal_shows_exactly_the_boards_admitted(client, persona, request):
    name = request.node.callspec.params["persona"]
    login_as(client, persona)
    response = client.get("/portal/")
    assert response.status_code == 200
    visible, tradable = EXPECTED_BOARDS[name]
    shown = [row["board"].code for row in response.context["boards"]]
    assert shown == visible
    assert [row["board"].code for row in response.context["boards"] if row["can_trade"]] == tradable
    for code in {"domestic", "international"} - set(visible):
        assert f'data-board="{code}"' not in response.content.decode()


@pytest.mark.parametrize("persona", MEMBERS + STAFF, indirect=True)
def test_api_me_and_boards_by_session(api_client, persona, request):
    name = request.node.callspec.params["persona"]
    login_as(api_client, persona)
    visible, tradable = EXPECTED_BOARDS[name]

    me = api_client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["email"] == persona.email
    assert me.json()["boards_visible"] == visible
    assert me.json()["boards_tradable"] == tradable

    board_list = api_client.get("/api/v1/boards")
    assert board_list.status_code == 200
    assert [b["code"] for b in board_list.json()] == visible
    assert [b["code"] for b in board_list.json() if b["can_trade"]] == tradable


@pytest.mark.parametrize("persona", MEMBERS + STAFF, indirect=True)
@pytest.mark.parametrize("path", list(ADMIN_DOORS))
def test_admin_doors(client, persona, path, request):
    name = request.node.callspec.params["persona"]
    login_as(client, persona)
    response = client.get(path)
    if name in ADMIN_DOORS[path]:
        assert response.status_code == 200
    elif name in STAFF:
        assert response.status_code == 403
    else:
        assert response.status_code == 302 and "/admin/login/" in response.url


# --- API keys ---------------------------------------------------------------------------------


@pytest.fixture
def key_for(db):
    def make(user, scopes=("read",), **kwargs):
        firm = user.membership.firm
        return services.api_key_create(firm=firm, user=user, name="test", scopes=list(scopes), actor=user, **kwargs)

    return make


def _get(api_client, path, raw_key):
    return api_client.get(path, HTTP_AUTHORIZATION=f"Api-Key {raw_key}")


@pytest.mark.parametrize("persona", MEMBERS, indirect=True)
def test_a_valid_key_sees_what_its_member_sees(api_client, persona, key_for, request):
    name = request.node.callspec.params["persona"]
    _, raw_key = key_for(persona)
    response = _get(api_client, "/api/v1/me", raw_key)
    assert response.status_code == 200
    assert response.json()["boards_visible"] == EXPECTED_BOARDS[name][0]
    assert [b["code"] for b in _get(api_client, "/api/v1/boards", raw_key).json()] == EXPECTED_BOARDS[name][0]


@pytest.mark.parametrize(
    "spoil, code",
    [
        ("expired", "api_key_expired"),
        ("revoked", "api_key_revoked"),
        ("wrong_secret", "invalid_api_key"),
        ("unknown_prefix", "invalid_api_key"),
        ("garbage", "invalid_api_key"),
        ("member_left", "api_key_revoked"),
        ("user_deactivated", "api_key_inactive"),
    ],
)
def test_keys_that_must_not_work(api_client, provider, key_for, spoil, code, time_machine):
    api_key, raw_key = key_for(provider, expires_at=timezone.now() + timedelta(days=1))
    if spoil == "expired":
        time_machine.move_to(timezone.now() + timedelta(days=2))
    elif spoil == "revoked":
        services.api_key_revoke(api_key=api_key, actor=provider)
    elif spoil == "wrong_secret":
        raw_key = raw_key[:-4] + ("AAAA" if not raw_key.endswith("AAAA") else "BBBB")
    elif spoil == "unknown_prefix":
        raw_key = "dxk_000000000000_" + raw_key.split("_", 2)[2]
    elif spoil == "garbage":
        raw_key = "not-a-key"
    elif spoil == "member_left":
        services.membership_remove(membership=provider.membership, actor=None)
    elif spoil == "user_deactivated":
        provider.is_active = False
        provider.save()
    response = _get(api_client, "/api/v1/me", raw_key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_a_read_key_cannot_write(api_client, provider, key_for):
    _, raw_key = key_for(provider, scopes=["read"])
    response = api_client.post("/api/v1/boards", {}, HTTP_AUTHORIZATION=f"Api-Key {raw_key}", format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_a_trade_key_gets_past_the_scope_check(api_client, provider, key_for):
    _, raw_key = key_for(provider, scopes=["read", "trade"])
    response = api_client.post("/api/v1/boards", {}, HTTP_AUTHORIZATION=f"Api-Key {raw_key}", format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_use_is_recorded_at_most_once_a_minute(api_client, provider, key_for, time_machine):
    api_key, raw_key = key_for(provider)
    assert _get(api_client, "/api/v1/me", raw_key).status_code == 200
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None
    _get(api_client, "/api/v1/me", raw_key)
    api_key.refresh_from_db()
    assert api_key.last_used_at == first
    time_machine.move_to(timezone.now() + timedelta(minutes=2))
    _get(api_client, "/api/v1/me", raw_key)
    api_key.refresh_from_db()
    assert api_key.last_used_at > first


def test_api_list_queries_stay_flat(api_client, provider, key_for, django_assert_max_num_queries):
    _, raw_key = key_for(provider)
    with django_assert_max_num_queries(6):
        assert _get(api_client, "/api/v1/boards", raw_key).status_code == 200
    with django_assert_max_num_queries(6):
        assert _get(api_client, "/api/v1/me", raw_key).status_code == 200


# --- The firm's API keys: its administrators' business, in the portal and the API --------------------------


@pytest.mark.parametrize("persona", MEMBERS + STAFF, indirect=True)
def test_key_pages_and_operations_by_persona(client, api_client, persona, request):
    # every member persona administers its firm; staff have no firm's keys to manage (they use the admin)
    name = request.node.callspec.params["persona"]
    login_as(client, persona)
    login_as(api_client, persona)
    page, keys = client.get("/portal/api-keys/"), api_client.get("/api/v1/api-keys")
    if name in MEMBERS:
        own = persona.membership.firm.api_keys.values_list("pk", flat=True)
        assert page.status_code == 200 and keys.status_code == 200
        assert [row["id"] for row in keys.json()["results"]] == sorted(own, reverse=True)
    else:
        assert page.status_code == 403 and keys.status_code == 403
        assert keys.json()["error"]["code"] == "not_allowed"


def test_a_key_sees_only_its_firms_keys(api_client, provider, domestic, key_for):
    _, theirs = key_for(domestic, scopes=["keys"])
    mine, raw_key = key_for(provider, scopes=["keys"])
    rows = _get(api_client, "/api/v1/api-keys", raw_key).json()["results"]
    assert [row["id"] for row in rows] == [mine.pk]
