"""A firm administrator's API keys through the API: /api/v1/api-keys…

Personas: `provider` is its firm's administrator (by session, or by a key holding `keys`); `trader` is of the
same firm; `domestic` administers another firm; `ops` is exchange staff. Only the firm's administrator manages
its keys (a trader learns who may, 403); another firm's key is "not found" (404); a key needs `keys`, and never
hands on a scope it does not hold.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from exchange import services
from exchange.models import ApiKey, AuditEvent
from tests.factories import api_error as error
from tests.factories import login_as, member

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys"
ADMINS_ONLY = "Only your firm's administrators can manage API keys."
ALL_SCOPES = ["keys", "read", "trade"]


def key_of(user, scopes=("read",), *, by=None, **kwargs):
    """A key acting for `user`, made by `by` (the user, when they administer their firm)."""
    return services.api_key_create(
        firm=user.membership.firm, user=user, name="k", scopes=list(scopes), actor=by or user, **kwargs
    )


def by_key(raw_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def by_session(user):
    client = APIClient()
    login_as(client, user)
    return client


@pytest.fixture
def trader(provider):
    return member(provider.membership.firm, "trader", "tess@provider.example")


@pytest.fixture
def target(provider):
    """One of the provider firm's keys, the object of the operations on one key."""
    api_key, _ = key_of(provider, ["read", "trade"])
    return api_key


@pytest.fixture
def admin_key(provider):
    """The firm administrator's key with every scope."""
    return by_key(key_of(provider, ALL_SCOPES)[1])


OPERATIONS = {
    "api_keys_list": ("get", lambda t: KEYS, None),
    "api_keys_create": ("post", lambda t: KEYS, {"name": "ERP", "scopes": ["read"]}),
    "api_keys_get": ("get", lambda t: f"{KEYS}/{t.pk}", None),
    "api_keys_revoke": ("post", lambda t: f"{KEYS}/{t.pk}/revoke", None),
    "api_keys_rotate": ("post", lambda t: f"{KEYS}/{t.pk}/rotate", None),
}
SUCCESS = {"api_keys_list": 200, "api_keys_create": 201, "api_keys_get": 200, "api_keys_revoke": 200,
           "api_keys_rotate": 201}  # fmt: skip


def call(client, operation, target):
    method, path, body = OPERATIONS[operation]
    if method == "get":
        return client.get(path(target))
    return client.post(path(target), body, format="json")


# --- Who may ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_anonymous_is_not_authenticated(operation, target):
    response = call(APIClient(), operation, target)
    assert response.status_code == 401 and error(response)["code"] == "not_authenticated"
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize("credential", ["session", "key"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_the_firms_administrator_may(operation, credential, provider, target):
    client = by_session(provider) if credential == "session" else by_key(key_of(provider, ALL_SCOPES)[1])
    response = call(client, operation, target)
    assert response.status_code == SUCCESS[operation], response.content


@pytest.mark.parametrize("credential", ["session", "key"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_trader_is_told_who_may(operation, credential, provider, trader, target):
    # given a trader, by session or with a key of every scope its administrator made for it
    client = by_session(trader) if credential == "session" else by_key(key_of(trader, ALL_SCOPES, by=provider)[1])
    # when
    response = call(client, operation, target)
    # then
    assert response.status_code == 403
    assert error(response) == {"code": "not_allowed", "message": ADMINS_ONLY, "details": {}}
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == (2 if credential == "key" else 1)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_key_without_the_keys_scope_is_refused(operation, provider, target):
    client = by_key(key_of(provider, ["read", "trade"])[1])
    response = call(client, operation, target)
    assert response.status_code == 403
    assert error(response)["code"] == "insufficient_scope" and "'keys'" in error(response)["message"]


@pytest.mark.parametrize("operation", ["api_keys_get", "api_keys_revoke", "api_keys_rotate"])
def test_another_firms_key_is_not_found(operation, domestic, target):
    for client in (by_session(domestic), by_key(key_of(domestic, ALL_SCOPES)[1])):
        response = call(client, operation, target)
        assert response.status_code == 404 and error(response)["code"] == "not_found"
    target.refresh_from_db()
    assert target.revoked_at is None


def test_another_firms_admin_lists_and_makes_only_its_own(domestic, target):
    client = by_session(domestic)
    assert client.get(KEYS).json()["results"] == []
    response = client.post(KEYS, {"name": "own", "scopes": ["read"]}, format="json")
    assert response.status_code == 201
    assert ApiKey.objects.get(pk=response.json()["id"]).firm == domestic.membership.firm


@pytest.mark.parametrize("operation", OPERATIONS)
def test_exchange_staff_manage_keys_in_the_admin_not_here(operation, ops, target):
    response = call(by_session(ops), operation, target)
    assert response.status_code == 403 and error(response)["message"] == ADMINS_ONLY


def test_a_session_write_needs_its_csrf_token(provider, target):
    client = APIClient(enforce_csrf_checks=True)
    login_as(client, provider)
    bodies = {KEYS: {"name": "x", "scopes": ["read"]}, f"{KEYS}/{target.pk}/revoke": {}, f"{KEYS}/{target.pk}/rotate": {}}
    for path, body in bodies.items():
        response = client.post(path, body, format="json")
        assert response.status_code == 403 and error(response)["code"] == "permission_denied"
    assert ApiKey.objects.count() == 1


# --- List and read ---------------------------------------------------------------------------------------


def test_the_list_is_the_firms_keys_newest_first_without_secrets(provider, trader, domestic, admin_key):
    # given keys of the firm in every state, and another firm's
    lapsed, _ = key_of(provider, ["read"], expires_at=timezone.now() + timedelta(minutes=5))
    ApiKey.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    revoked, _ = key_of(trader, ["read"], by=provider)
    services.api_key_revoke(api_key=revoked, actor=provider)
    key_of(domestic)
    # when
    response = admin_key.get(KEYS)
    # then
    assert response.status_code == 200
    rows = response.json()["results"]
    mine = list(ApiKey.objects.filter(firm=provider.membership.firm).order_by("-id"))
    assert [row["id"] for row in rows] == [k.pk for k in mine]
    assert {row["id"]: row["is_active"] for row in rows} == {k.pk: k.is_active for k in mine}
    row = next(r for r in rows if r["id"] == revoked.pk)
    assert set(row) == {"id", "name", "prefix", "scopes", "acts_for", "created_by", "created_at", "expires_at",
                        "revoked_at", "last_used_at", "is_active"}  # fmt: skip
    assert row["acts_for"] == trader.get_full_name() and row["created_by"] == provider.get_full_name()
    assert row["revoked_at"] is not None and row["is_active"] is False
    assert all("hash" not in str(r) and r["prefix"] for r in rows)
    assert not any(k.key_hash in response.content.decode() for k in mine)


def test_the_list_pages_by_cursor(provider, admin_key):
    for _ in range(3):
        key_of(provider)
    first = admin_key.get(KEYS, {"page_size": 2}).json()
    second = admin_key.get(first["next"]).json()
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4 and second["next"] is None


def test_the_list_queries_stay_flat(provider, trader, admin_key, django_assert_max_num_queries):
    for i in range(5):
        key_of(trader if i % 2 else provider, by=provider)
    with django_assert_max_num_queries(8):
        assert len(admin_key.get(KEYS).json()["results"]) == 6


def test_one_key(admin_key, target):
    response = admin_key.get(f"{KEYS}/{target.pk}")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["prefix"], body["scopes"], body["is_active"]) == (
        target.pk, target.prefix, ["read", "trade"], True
    )  # fmt: skip


@pytest.mark.parametrize("pk", [999_999, 2**63 - 1, 2**63, 10**30])
def test_no_such_key_is_not_found(admin_key, pk):
    response = admin_key.get(f"{KEYS}/{pk}")
    assert response.status_code == 404 and error(response)["code"] == "not_found"


# --- Create ----------------------------------------------------------------------------------------------


def test_a_new_key_is_answered_once_and_works(provider, admin_key):
    # when
    response = admin_key.post(KEYS, {"name": "ERP", "scopes": ["read", "trade"]}, format="json")
    # then the answer has the key itself, once
    assert response.status_code == 201
    body = response.json()
    raw_key = body["key"]
    api_key = ApiKey.objects.get(pk=body["id"])
    assert raw_key.startswith(f"dxk_{api_key.prefix}_") and api_key.user == provider
    assert (body["name"], body["scopes"], body["is_active"]) == ("ERP", ["read", "trade"], True)
    assert parse_datetime(body["expires_at"]) > timezone.now() + timedelta(days=364)
    # and the key works, says what it is, and is never shown again
    me = by_key(raw_key).get("/api/v1/me").json()
    assert me["api_key"] == {"id": api_key.pk, "name": "ERP", "prefix": api_key.prefix,
                             "scopes": ["read", "trade"], "expires_at": body["expires_at"]}  # fmt: skip
    assert raw_key not in admin_key.get(f"{KEYS}/{api_key.pk}").content.decode()
    assert raw_key not in admin_key.get(KEYS).content.decode()
    assert raw_key not in str(AuditEvent.objects.values_list("payload", flat=True))


def test_an_expiry_within_two_years(admin_key):
    expires_at = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = admin_key.post(KEYS, {"name": "short", "scopes": ["read"], "expires_at": expires_at.isoformat()},
                              format="json")  # fmt: skip
    assert response.status_code == 201
    assert parse_datetime(response.json()["expires_at"]) == expires_at


@pytest.mark.parametrize("days", [-1, 731])
def test_an_expiry_in_the_past_or_too_far_ahead_is_refused(admin_key, days):
    expires_at = (timezone.now() + timedelta(days=days)).isoformat()
    response = admin_key.post(KEYS, {"name": "x", "scopes": ["read"], "expires_at": expires_at}, format="json")
    assert response.status_code == 422
    assert error(response)["code"] == "invalid_expiry" and list(error(response)["details"]) == ["expires_at"]
    assert ApiKey.objects.count() == 1  # the acting key only


@pytest.mark.parametrize(
    "body, fields",
    [
        ({}, {"name", "scopes"}),
        ({"name": "x", "scopes": []}, {"scopes"}),
        ({"name": "x", "scopes": ["admin"]}, {"scopes.0"}),
        ({"name": "x" * 101, "scopes": ["read"]}, {"name"}),
        ({"name": "x", "scopes": "read"}, {"scopes"}),
        ({"name": "x", "scopes": ["read"], "expires_at": "tomorrow"}, {"expires_at"}),
    ],
)
def test_a_body_that_does_not_fit_the_schema_is_a_400_naming_every_field(admin_key, body, fields):
    response = admin_key.post(KEYS, body, format="json")
    assert response.status_code == 400
    assert error(response)["code"] == "validation_error" and set(error(response)["details"]) == fields
    assert ApiKey.objects.count() == 1


def test_a_key_never_hands_on_a_scope_it_lacks(provider):
    client = by_key(key_of(provider, ["read", "keys"])[1])
    response = client.post(KEYS, {"name": "more", "scopes": ["read", "trade"]}, format="json")
    assert response.status_code == 403
    assert error(response)["code"] == "insufficient_scope" and error(response)["details"] == {"scopes": ["trade"]}
    assert client.post(KEYS, {"name": "same", "scopes": ["keys"]}, format="json").status_code == 201


def test_a_session_gives_any_scope(provider):
    response = by_session(provider).post(KEYS, {"name": "all", "scopes": ALL_SCOPES}, format="json")
    assert response.status_code == 201 and response.json()["scopes"] == ALL_SCOPES


def test_the_firms_limit_is_a_422(provider, admin_key, settings):
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 1
    response = admin_key.post(KEYS, {"name": "one more", "scopes": ["read"]}, format="json")
    assert response.status_code == 422 and error(response)["code"] == "api_key_limit"


# --- Revoke ----------------------------------------------------------------------------------------------


def test_revoking_a_key(provider, admin_key):
    api_key, raw_key = key_of(provider, ["read"])
    response = admin_key.post(f"{KEYS}/{api_key.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None and response.json()["is_active"] is False
    assert error(by_key(raw_key).get("/api/v1/me"))["code"] == "api_key_revoked"
    # and a second time is a conflict with the key's state
    again = admin_key.post(f"{KEYS}/{api_key.pk}/revoke")
    assert again.status_code == 409 and error(again)["code"] == "invalid_transition"
    assert AuditEvent.objects.filter(verb="api_key.revoke", object_id=str(api_key.pk)).count() == 1


def test_a_key_may_revoke_itself(provider):
    api_key, raw_key = key_of(provider, ["keys"])
    client = by_key(raw_key)
    assert client.post(f"{KEYS}/{api_key.pk}/revoke").status_code == 200
    assert client.get(KEYS).status_code == 401


# --- Rotate ----------------------------------------------------------------------------------------------


def test_rotating_a_key(provider, trader, admin_key):
    # given a trader's key, in use
    old, old_raw = key_of(trader, ["read", "trade"], by=provider, expires_at=timezone.now() + timedelta(days=90))
    # when the administrator rotates it
    response = admin_key.post(f"{KEYS}/{old.pk}/rotate")
    # then the answer is the new key, once, for the same member, name and scopes
    assert response.status_code == 201
    body = response.json()
    new = ApiKey.objects.get(pk=body["id"])
    assert body["replaces"] == old.pk and body["key"].startswith(f"dxk_{new.prefix}_")
    assert (new.user, new.name, new.scopes) == (trader, old.name, ["read", "trade"])
    assert timedelta(days=90) - (new.expires_at - timezone.now()) < timedelta(minutes=1)
    # and the old key stopped working at once, the new one works
    assert error(by_key(old_raw).get("/api/v1/me"))["code"] == "api_key_revoked"
    assert by_key(body["key"]).get("/api/v1/me").json()["email"] == trader.email
    assert AuditEvent.objects.filter(verb="api_key.rotate", object_id=str(new.pk)).count() == 1
    assert AuditEvent.objects.filter(verb="api_key.revoke", object_id=str(old.pk)).count() == 1


def test_a_key_rotates_itself(provider):
    api_key, raw_key = key_of(provider, ["read", "keys"])
    response = by_key(raw_key).post(f"{KEYS}/{api_key.pk}/rotate")
    assert response.status_code == 201
    assert by_key(raw_key).get("/api/v1/me").status_code == 401
    assert by_key(response.json()["key"]).get("/api/v1/me").json()["api_key"]["scopes"] == ["keys", "read"]


def test_a_key_rotates_no_key_with_scopes_it_lacks(provider, target):
    client = by_key(key_of(provider, ["read", "keys"])[1])
    response = client.post(f"{KEYS}/{target.pk}/rotate")
    assert response.status_code == 403 and error(response)["details"] == {"scopes": ["trade"]}
    target.refresh_from_db()
    assert target.revoked_at is None


def test_a_revoked_key_is_not_rotated(provider, admin_key, target):
    services.api_key_revoke(api_key=target, actor=provider)
    response = admin_key.post(f"{KEYS}/{target.pk}/rotate")
    assert response.status_code == 409 and error(response)["code"] == "invalid_transition"
    assert ApiKey.objects.count() == 2


# --- Who am I, through a key -----------------------------------------------------------------------------


def test_me_says_the_keys_scopes_and_expiry_and_null_for_a_session(provider):
    api_key, raw_key = key_of(provider, ["read"])
    body = by_key(raw_key).get("/api/v1/me").json()
    assert body["api_key"]["id"] == api_key.pk and body["api_key"]["scopes"] == ["read"]
    assert parse_datetime(body["api_key"]["expires_at"]) == api_key.expires_at
    assert by_session(provider).get("/api/v1/me").json()["api_key"] is None


def test_any_key_may_ask_who_it_is_but_reads_need_read(provider):
    client = by_key(key_of(provider, ["keys"])[1])
    assert client.get("/api/v1/me").status_code == 200
    response = client.get("/api/v1/boards")
    assert response.status_code == 403 and error(response)["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    "written, meant",
    [
        ("{day}T12:00:00Z", "{day}T12:00:00+00:00"),
        ("{day}t12:00:00z", "{day}T12:00:00+00:00"),
        ("{day}T12:00:00.123456789+08:00", "{day}T12:00:00.123456+08:00"),
        ("{day}T23:59:60Z", "{day}T23:59:59+00:00"),  # a leap second: the second before it
    ],
)
def test_an_expiry_is_read_as_rfc_3339_writes_it(admin_key, written, meant):
    day = (timezone.now() + timedelta(days=30)).date().isoformat()
    response = admin_key.post(
        KEYS, {"name": "x", "scopes": ["read"], "expires_at": written.format(day=day)}, format="json"
    )
    assert response.status_code == 201, response.content
    assert parse_datetime(response.json()["expires_at"]) == parse_datetime(meant.format(day=day))


@pytest.mark.parametrize("written", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_an_expiry_beyond_what_the_exchange_holds_is_a_422(admin_key, written):
    response = admin_key.post(KEYS, {"name": "x", "scopes": ["read"], "expires_at": written}, format="json")
    assert response.status_code == 422 and error(response)["details"] == {
        "expires_at": ["A date and time the exchange cannot hold."]
    }
