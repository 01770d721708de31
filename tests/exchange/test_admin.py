"""Staff work through the admin: admission actions, memberships, API keys, the read-only audit trail."""

import re
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from exchange import services
from exchange.models import ApiKey, AuditEvent, MemberFirm, Membership
from exchange.selectors import board_codes_for_firm
from tests.factories import PASSWORD, MemberFirmFactory, UserFactory, login_as, member

pytestmark = pytest.mark.django_db

# A key expiry within the two years a key may live, however old the suite gets.
IN_A_YEAR = (date.today() + timedelta(days=365)).isoformat()


def _action(client, action, firms):
    return client.post(
        reverse("admin:exchange_memberfirm_changelist"),
        {"action": action, "_selected_action": [f.pk for f in firms]},
        follow=True,
    )


def test_admit_and_revoke_actions_call_the_services(client, ops, boards):
    firm = MemberFirmFactory()
    login_as(client, ops)
    response = _action(client, "admit_international", [firm])
    assert "1 firm admitted to the International board." in response.content.decode()
    assert board_codes_for_firm(firm=firm) == {"international"}
    _action(client, "revoke_international", [firm])
    assert board_codes_for_firm(firm=firm) == set()
    assert list(AuditEvent.objects.filter(object_id=str(firm.pk)).values_list("verb", flat=True).order_by("created_at", "id"))[
        -2:
    ] == ["board.admit", "board.revoke"]


def test_admission_refusals_are_shown_and_others_still_admitted(client, ops, boards):
    pending = MemberFirmFactory(kyc_status=MemberFirm.KycStatus.PENDING, legal_name_en="Pending Co.")
    foreign = MemberFirmFactory(country="US", legal_name_en="Foreign Inc.")
    ready = MemberFirmFactory(legal_name_en="Ready Co.")
    login_as(client, ops)
    response = _action(client, "admit_domestic", [pending, foreign, ready])
    text = response.content.decode()
    assert "KYC status is Pending" in text
    assert "may be admitted to the international board only" in text
    assert "1 firm admitted" in text
    assert board_codes_for_firm(firm=ready) == {"domestic"}
    assert board_codes_for_firm(firm=pending) == board_codes_for_firm(firm=foreign) == set()


def test_staff_without_the_permission_do_not_get_the_actions(client, reviewer, boards):
    login_as(client, reviewer)
    response = client.get(reverse("admin:exchange_memberfirm_changelist"))
    assert response.status_code == 200
    assert "admit_domestic" not in response.content.decode()
    firm = MemberFirmFactory()
    response = _action(client, "admit_domestic", [firm])
    assert board_codes_for_firm(firm=firm) == set()


def _add_firm(client, user, **fields):
    """Post the admin's add-firm form as `user`: a firm in China, KYC pending, no memberships, and `fields`."""
    login_as(client, user)
    data = {
        "country": "CN",
        "kyc_status": "pending",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        **fields,
    }
    return client.post(reverse("admin:exchange_memberfirm_add"), data)


def test_creating_a_firm_in_admin_goes_through_the_service(client, ops):
    response = _add_firm(
        client, ops, legal_name_en="Admin Made Co.", legal_name_zh="后台数据有限公司", uscc="91310115MA1KDATA0X",
        lei="", role="provider", ftz="shanghai_lingang",
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    firm = MemberFirm.objects.get(legal_name_en="Admin Made Co.")
    assert firm.group.name == f"firm:{firm.pk}"
    assert AuditEvent.objects.filter(verb="firm.create", object_id=str(firm.pk)).exists()


def test_a_bad_uscc_in_admin_is_a_form_error(client, ops):
    response = _add_firm(client, ops, legal_name_en="Typo Co.", uscc="911100007109288315", role="buyer")
    assert response.status_code == 200
    assert "check character" in response.content.decode()
    assert not MemberFirm.objects.exists()


def test_membership_inline_adds_the_user_to_the_firms_group(client, ops):
    firm = MemberFirmFactory()
    newcomer = UserFactory()
    login_as(client, ops)
    url = reverse("admin:exchange_memberfirm_change", args=[firm.pk])
    data = {
        "legal_name_en": firm.legal_name_en,
        "legal_name_zh": firm.legal_name_zh,
        "country": "CN",
        "uscc": firm.uscc,
        "lei": "",
        "role": firm.role,
        "kyc_status": firm.kyc_status,
        "ftz": "",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": newcomer.pk,
        "memberships-0-role": "trader",
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Membership.objects.get(user=newcomer).firm == firm
    assert newcomer.groups.filter(pk=firm.group_id).exists()
    assert AuditEvent.objects.filter(verb="membership.add").exists()


def test_api_key_created_in_admin_is_shown_once(client, ops, provider):
    login_as(client, ops)
    response = client.post(
        reverse("admin:exchange_apikey_add"),
        {
            "firm": provider.membership.firm.pk,
            "user": provider.pk,
            "name": "Partner ERP",
            "scopes": ["read", "trade"],
            "expires_at_0": IN_A_YEAR,
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    raw_key = re.search(r"dxk_[0-9a-f]{12}_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    api_key = ApiKey.objects.get()
    assert raw_key.startswith(f"dxk_{api_key.prefix}_") and api_key.scopes == ["read", "trade"]
    change_page = client.get(reverse("admin:exchange_apikey_change", args=[api_key.pk])).content.decode()
    assert raw_key not in change_page and api_key.prefix in change_page


def test_api_key_revoke_action(client, ops, provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    login_as(client, ops)
    client.post(reverse("admin:exchange_apikey_changelist"), {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and api_key.revoked_by == ops


def test_audit_events_are_read_only_in_admin(client, superuser, boards):
    MemberFirmFactory()
    event = AuditEvent.objects.first()
    login_as(client, superuser)
    assert client.get(reverse("admin:exchange_auditevent_changelist") + "?verb=firm.create").status_code == 200
    page = client.get(reverse("admin:exchange_auditevent_change", args=[event.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(reverse("admin:exchange_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:exchange_auditevent_add")).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_board_object_permission_screens_are_there(client, superuser, boards):
    login_as(client, superuser)
    url = reverse("admin:exchange_board_permissions", args=[boards["international"].pk])
    assert client.get(url).status_code == 200


class TestSecondFactor:
    @pytest.fixture(autouse=True)
    def _require_otp(self, settings):
        settings.ADMIN_REQUIRE_OTP = True

    def test_staff_without_a_verified_device_are_sent_to_log_in(self, client, ops):
        login_as(client, ops)
        response = client.get("/admin/")
        assert response.status_code == 302 and "/admin/login/" in response.url

    def test_password_alone_does_not_open_the_admin(self, client, ops):
        TOTPDevice.objects.create(user=ops, name="phone", confirmed=True)
        response = client.post("/admin/login/?next=/admin/", {"username": ops.email, "password": PASSWORD})
        assert response.status_code == 200
        assert client.get("/admin/").status_code == 302

    def test_password_and_totp_open_the_admin_and_are_audited(self, client, ops):
        device = TOTPDevice.objects.create(user=ops, name="phone", confirmed=True)
        token = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
        response = client.post(
            "/admin/login/?next=/admin/",
            {"username": ops.email, "password": PASSWORD, "otp_device": device.persistent_id, "otp_token": token},
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        assert client.get("/admin/").status_code == 200
        assert AuditEvent.objects.filter(verb="staff.login", actor=ops).exists()

    def test_members_never_get_in(self, client, provider):
        login_as(client, provider)
        assert client.get("/admin/").status_code == 302


def test_member_logins_are_not_audited_but_staff_logins_are(client, boards):
    firm = MemberFirmFactory()
    user = member(firm, email="m@firm.example")
    staff = UserFactory(email="s@exchange.example", is_staff=True)
    client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": staff.email, "password": PASSWORD})
    assert list(AuditEvent.objects.filter(verb="staff.login").values_list("actor_repr", flat=True)) == [staff.email]
