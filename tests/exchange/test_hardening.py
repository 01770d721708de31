"""Holes found in review, each held shut by a test."""

import io
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from exchange import services
from exchange.models import ApiKey, AuditEvent, Board
from exchange.selectors import board_codes_for_firm
from tests.factories import PASSWORD, MemberFirmFactory, login_as, member

pytestmark = pytest.mark.django_db

# A key expiry within the two years a key may live, however old the suite gets.
IN_A_YEAR = (date.today() + timedelta(days=365)).isoformat()


@pytest.fixture
def victim(boards):
    return member(MemberFirmFactory(), email="victim@firm.example")


def test_case_variants_of_a_name_share_one_lock(client, victim, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        name = "victim@firm.example" if i % 2 else "VICTIM@Firm.Example"
        client.post("/accounts/login/", {"username": name, "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    response = client.post(
        "/accounts/login/", {"username": "Victim@FIRM.example", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1"
    )
    assert response.status_code == 429


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_an_absurdly_long_name_is_a_failed_log_in_not_an_error(client, path):
    response = client.post(path, {"username": "x" * 5000 + "@example.com", "password": "x"}, REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key dxk_\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00_x",
        "Api-Key dxk_abcdefabcdef_" + "ü" * 43,
        "Api-Key " + "a" * 10000,
        "Api-Key",
        "Api-Key a b",
    ],
)
def test_malformed_keys_are_401_not_500(api_client, header):
    response = api_client.get("/api/v1/me", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_guardian_screens_cannot_admit_a_firm(client, superuser, boards):
    foreign = MemberFirmFactory(country="US", kyc_status="pending")
    login_as(client, superuser)
    url = reverse("admin:exchange_board_permissions_manage_group", args=[boards["domestic"].pk, foreign.group_id])
    response = client.post(url, {"permissions": ["view_board", "trade_on_board"]}, follow=True)
    assert "granted by admission" in response.content.decode()
    assert board_codes_for_firm(firm=foreign) == set()


def test_only_superusers_reach_the_object_permission_screens(client, ops, boards):
    login_as(client, ops)
    response = client.get(reverse("admin:exchange_board_permissions", args=[boards["domestic"].pk]), follow=True)
    assert "Only superusers" in response.content.decode()


def test_staff_object_permissions_set_in_the_guardian_screen_are_audited(client, superuser, boards):
    from tests.factories import UserFactory

    one_board_reviewer = UserFactory(is_staff=True)
    login_as(client, superuser)
    url = reverse("admin:exchange_board_permissions_manage_user", args=[boards["domestic"].pk, one_board_reviewer.pk])
    client.post(url, {"permissions": ["view_board"]})
    assert one_board_reviewer.has_perm("exchange.view_board", boards["domestic"])
    event = AuditEvent.objects.get(verb="board.object_permissions")
    assert event.payload == {"user": one_board_reviewer.email, "permissions": ["view_board"]}


def test_exchange_admins_cannot_grant_themselves_power(client, ops):
    login_as(client, ops)
    page = client.get(reverse("admin:exchange_user_change", args=[ops.pk])).content.decode()
    assert 'name="is_superuser"' not in page and 'name="groups"' not in page
    client.post(
        reverse("admin:exchange_user_change", args=[ops.pk]),
        {
            "email": ops.email,
            "full_name": "Ops",
            "is_active": "on",
            "is_superuser": "on",
            "last_login_0": "",
            "last_login_1": "",
        },
    )
    ops.refresh_from_db()
    assert not ops.is_superuser


def test_board_changes_are_audited(client, superuser, boards):
    login_as(client, superuser)
    board = boards["international"]
    response = client.post(
        reverse("admin:exchange_board_change", args=[board.pk]),
        {"name_en": "International board (cross-border)", "name_zh": board.name_zh,
         "settlement_currencies": '["CNY", "USD"]', "is_cross_border": "on"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Board.objects.get(pk=board.pk).name_en == "International board (cross-border)"
    assert AuditEvent.objects.get(verb="board.update").payload == {
        "changes": {"name_en": [board.name_en, "International board (cross-border)"]}
    }


def test_a_domestic_firm_cannot_move_abroad_while_admitted(ops, domestic):
    firm = domestic.membership.firm
    with pytest.raises(ValidationError) as exc:
        services.firm_update(firm=firm, actor=ops, country="HK", uscc="", lei="")
    assert "country" in exc.value.message_dict
    firm.refresh_from_db()
    assert firm.country == "CN"


@pytest.mark.parametrize("problem", ["stranger", "past", "too_far"])
def test_admin_key_refusals_are_form_errors(client, ops, provider, domestic, problem):
    login_as(client, ops)
    data = {
        "firm": provider.membership.firm.pk,
        "user": domestic.pk if problem == "stranger" else provider.pk,
        "name": "k",
        "scopes": ["read"],
        "expires_at_0": {"past": "2001-01-01", "too_far": (date.today() + timedelta(days=800)).isoformat()}.get(
            problem, IN_A_YEAR
        ),
        "expires_at_1": "00:00:00",
    }
    response = client.post(reverse("admin:exchange_apikey_add"), data)
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_totp_enrol_gives_a_staff_user_a_device(ops):
    out = io.StringIO()
    call_command("totp_enroll", ops.email, "--no-qr", stdout=out)
    assert "otpauth://totp/" in out.getvalue()
    assert TOTPDevice.objects.filter(user=ops, confirmed=True).count() == 1
    assert AuditEvent.objects.filter(verb="user.otp_device_add", object_id=str(ops.pk)).exists()


def test_totp_enrol_refuses_members(provider):
    with pytest.raises(CommandError):
        call_command("totp_enroll", provider.email, "--no-qr")


def test_demo_totp_refuses_outside_debug(ops, settings):
    settings.DEBUG = False
    TOTPDevice.objects.create(user=ops, name="x", confirmed=True)
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("demo_totp", ops.email)


def test_switching_off_the_second_factor_in_production_fails_the_deploy_check(settings):
    from exchange.checks import admin_second_factor

    settings.DEBUG, settings.ADMIN_REQUIRE_OTP = False, False
    assert [e.id for e in admin_second_factor(None)] == ["exchange.E001"]
    settings.ADMIN_REQUIRE_OTP = True
    assert admin_second_factor(None) == []


def test_a_missing_chain_head_is_reported(ops):
    from exchange.models import AuditChainHead

    event = services.audit_record(actor=ops, verb="test.event")
    AuditChainHead.objects.all().delete()
    assert services.audit_verify() == [
        f"the head row of chain {event.chain} is missing (the chain's end cannot be checked)"
    ]


def test_the_api_key_page_is_never_cached(client, provider):
    login_as(client, provider)
    assert "no-store" in client.get("/portal/api-keys/")["Cache-Control"]


def test_healthz_with_a_reachable_broker(client, settings):
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
