"""Staff powers only with the second factor, on every face; no staff member can take over another's account.

RELIABILITY T17 extended: whenever the second factor is required (DEBUG off), a staff session opened with a
password alone, through the portal's log-in or any other way, holds no staff power in the portal, the API or
the selectors behind them; an API key never carries staff powers; and only superusers set or reset a staff
account's password or second-factor devices, each change in the audit trail.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from exchange import services
from exchange.models import AuditEvent, Membership
from exchange.security import without_staff_powers
from exchange.selectors import board_access
from listings import services as listing_services
from listings.selectors import product_list_catalogue
from tests.factories import PASSWORD, UserFactory, draft_product, login_as

pytestmark = pytest.mark.django_db

STAFF = ["ops", "reviewer", "officer", "clerk", "superuser"]


@pytest.fixture(autouse=True)
def _production(settings):
    # What production runs with: DEBUG off turns the second factor on (settings.ADMIN_REQUIRE_OTP).
    settings.DEBUG = False
    settings.ADMIN_REQUIRE_OTP = True


@pytest.fixture
def staff(request, boards):
    return request.getfixturevalue(request.param)


def _token(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _portal_login(client: Client, user, token: str = "") -> object:
    data = {"username": user.email, "password": PASSWORD}
    if token:
        data["otp_token"] = token
    return client.post(reverse("login"), data)


@pytest.fixture
def ops_client(client, ops):
    device = TOTPDevice.objects.create(user=ops, name="phone", confirmed=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": ops.email, "password": PASSWORD, "otp_device": device.persistent_id, "otp_token": _token(device)},
    )
    assert response.status_code == 302
    return client


@pytest.fixture
def in_review(provider, reviewer):
    """A product a reviewer sees and members do not: submitted and taken in review."""
    product = draft_product(provider)
    listing_services.product_submit(product=product, actor=provider)
    listing_services.review_start(product=product, actor=reviewer)
    return product


class TestPortalLogIn:
    @pytest.mark.parametrize("staff", STAFF, indirect=True)
    def test_password_alone_opens_no_staff_session(self, client, staff):
        TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
        # when
        response = _portal_login(client, staff)
        # then
        assert response.status_code == 200
        assert "one-time code" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_a_wrong_code_is_refused(self, client, reviewer):
        device = TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)
        wrong = f"{(int(_token(device)) + 1) % 1_000_000:06d}"
        response = _portal_login(client, reviewer, wrong)
        assert response.status_code == 200
        assert "not valid" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_staff_without_a_device_are_told_to_enrol(self, client, reviewer):
        response = _portal_login(client, reviewer, "123456")
        assert response.status_code == 200
        assert "no authenticator" in response.content.decode()

    def test_password_and_code_open_a_verified_session_with_its_powers(self, client, reviewer, in_review):
        device = TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)
        # when
        response = _portal_login(client, reviewer, _token(device))
        # then: the reviewer reads the product in review, through the portal and the API session alike
        assert response.status_code == 302
        assert client.get(reverse("portal:product", args=[in_review.pk])).status_code == 200
        assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 200

    def test_members_need_no_code(self, client, provider):
        response = _portal_login(client, provider)
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(provider.pk)

    def test_staff_sessions_are_short_and_members_keep_theirs(self, client, settings, reviewer, provider):
        device = TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)
        _portal_login(client, reviewer, _token(device))
        assert client.session.get_expiry_age() == settings.STAFF_SESSION_AGE
        member_client = Client()
        _portal_login(member_client, provider)
        assert member_client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE

    def test_a_password_only_staff_session_may_sign_in_again_with_the_code(self, client, reviewer):
        device = TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)
        login_as(client, reviewer)  # a session from before the second factor was required
        assert client.get(reverse("login")).status_code == 200  # not sent on as "already logged in"
        assert _portal_login(client, reviewer, _token(device)).status_code == 302


class TestUnverifiedStaffSessions:
    """A session that somehow holds only the password (opened before the factor was required, or a member
    made staff while logged in) sees what a visitor with no firm sees, on every face."""

    @pytest.mark.parametrize("staff", STAFF, indirect=True)
    def test_the_api_sees_no_staff_power(self, staff, in_review):
        client = APIClient()
        login_as(client, staff)
        # when
        me = client.get("/api/v1/me")
        # then
        assert me.status_code == 200
        assert me.json()["is_staff"] is False and me.json()["boards_visible"] == []
        assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 404
        assert client.get(f"/api/v1/products/{in_review.pk}/sample").status_code == 404
        assert client.get(f"/api/v1/products/{in_review.pk}/plans").status_code == 404
        assert client.get(f"/api/v1/products/{in_review.pk}?revision=1").status_code == 404
        assert client.get("/api/v1/boards").json() == []
        assert client.get("/api/v1/products").json()["results"] == []

    @pytest.mark.parametrize("staff", STAFF, indirect=True)
    def test_the_portal_sees_no_staff_power(self, client, staff, in_review):
        login_as(client, staff)
        assert client.get(reverse("portal:product", args=[in_review.pk])).status_code == 404
        assert client.get(reverse("portal:product-sample", args=[in_review.pk])).status_code == 404

    def test_the_admin_asks_for_the_code(self, client, reviewer):
        login_as(client, reviewer)
        response = client.get("/admin/")
        assert response.status_code == 302 and "/admin/login/" in response.url

    def test_a_verified_session_keeps_its_powers(self, client, reviewer, in_review):
        # the control: the same requests answer once the session is verified (django-otp's session key)
        device = TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=True)
        login_as(client, reviewer)
        session = client.session
        session["otp_device_id"] = device.persistent_id
        session.save()
        assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 200
        assert client.get(reverse("portal:product", args=[in_review.pk])).status_code == 200

    def test_without_the_requirement_staff_keep_their_powers(self, settings, client, reviewer, in_review):
        settings.ADMIN_REQUIRE_OTP = False
        login_as(client, reviewer)
        assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 200

    def test_the_stripped_user_is_never_saved(self, superuser):
        demoted = without_staff_powers(superuser)
        assert not demoted.is_staff and not demoted.is_superuser
        assert not demoted.has_perm("exchange.change_user")
        with pytest.raises(PermissionError):
            demoted.save()
        superuser.refresh_from_db()
        assert superuser.is_superuser and superuser.is_staff

    def test_the_selectors_see_no_staff_power(self, reviewer, in_review):
        demoted = without_staff_powers(reviewer)
        assert board_access(user=demoted).visible == set()
        assert not product_list_catalogue(user=demoted).exists()


class TestApiKeys:
    def test_a_key_never_carries_its_users_staff_powers(self, provider, superuser, in_review):
        # given: a member of the provider's firm who is also exchange staff (a reviewer)
        staff_member = UserFactory(email="both@provider.example", is_staff=True)
        from exchange import roles

        staff_member.groups.add(roles.sync_staff_roles()[roles.LISTING_REVIEWERS])
        firm = provider.membership.firm
        services.membership_add(user=staff_member, firm=firm, role=Membership.Role.TRADER, actor=None)
        _, raw_key = services.api_key_create(firm=firm, user=staff_member, name="erp", scopes=["read"], actor=superuser)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        # when
        me = client.get("/api/v1/me")
        # then: the firm's product in review is readable as the provider firm's own, the staff role adds nothing
        assert me.status_code == 200 and me.json()["is_staff"] is False
        boards = {b["code"]: b["can_trade"] for b in client.get("/api/v1/boards").json()}
        assert boards == {"domestic": True, "international": True}


class TestAccountTakeOver:
    @pytest.fixture
    def peer(self, db):
        from exchange import roles

        user = UserFactory(email="ops2@exchange.example", is_staff=True)
        user.groups.add(roles.sync_staff_roles()[roles.EXCHANGE_ADMINS])
        return user

    @pytest.mark.parametrize("target", ["superuser", "peer", "reviewer", "ops"])
    def test_an_administrator_cannot_set_a_staff_password(self, request, ops_client, target):
        user = request.getfixturevalue(target)
        old_hash = user.password
        url = reverse("admin:auth_user_password_change", args=[user.pk])
        # when
        shown = ops_client.get(url)
        posted = ops_client.post(url, {"password1": "Taken-over-2026!", "password2": "Taken-over-2026!"})
        # then
        assert shown.status_code == 403 and posted.status_code == 403
        user.refresh_from_db()
        assert user.password == old_hash
        assert not AuditEvent.objects.filter(verb="user.password_change").exists()

    @pytest.mark.parametrize("target", ["superuser", "peer"])
    def test_an_administrator_cannot_edit_or_deactivate_a_staff_account(self, request, ops_client, target):
        user = request.getfixturevalue(target)
        url = reverse("admin:exchange_user_change", args=[user.pk])
        response = ops_client.post(url, {"email": "me@attacker.example", "full_name": "x", "is_active": ""})
        assert response.status_code == 403
        user.refresh_from_db()
        assert user.email != "me@attacker.example" and user.is_active

    def test_an_administrator_still_manages_members_and_is_audited(self, ops_client, ops, provider):
        url = reverse("admin:auth_user_password_change", args=[provider.pk])
        response = ops_client.post(url, {"password1": "Reset-by-ops-2026!", "password2": "Reset-by-ops-2026!"})
        assert response.status_code == 302
        provider.refresh_from_db()
        assert provider.check_password("Reset-by-ops-2026!")
        event = AuditEvent.objects.get(verb="user.password_change")
        assert (event.actor, event.object_id, event.payload["own"]) == (ops, str(provider.pk), False)

    def test_a_superuser_resets_a_staff_password_and_is_audited(self, client, superuser, ops):
        login_as(client, superuser)
        session = client.session
        device = TOTPDevice.objects.create(user=superuser, name="phone", confirmed=True)
        session["otp_device_id"] = device.persistent_id
        session.save()
        url = reverse("admin:auth_user_password_change", args=[ops.pk])
        response = client.post(url, {"password1": "Reset-by-root-2026!", "password2": "Reset-by-root-2026!"})
        assert response.status_code == 302
        assert AuditEvent.objects.filter(verb="user.password_change", actor=superuser, object_id=str(ops.pk)).exists()

    @pytest.mark.parametrize(
        "path", ["admin:otp_totp_totpdevice_changelist", "admin:otp_totp_totpdevice_add"], ids=["list", "add"]
    )
    def test_an_administrator_cannot_touch_devices(self, ops_client, path):
        assert ops_client.get(reverse(path)).status_code == 403

    def test_an_administrator_cannot_reset_anothers_device(self, ops_client, superuser):
        device = TOTPDevice.objects.create(user=superuser, name="root phone", confirmed=True)
        change = reverse("admin:otp_totp_totpdevice_change", args=[device.pk])
        delete = reverse("admin:otp_totp_totpdevice_delete", args=[device.pk])
        assert ops_client.get(change).status_code == 403
        assert ops_client.post(delete, {"post": "yes"}).status_code == 403
        assert TOTPDevice.objects.filter(pk=device.pk).exists()

    def test_own_password_change_asks_for_the_old_one_and_is_audited(self, ops_client, ops):
        response = ops_client.post(
            reverse("admin:password_change"),
            {"old_password": PASSWORD, "new_password1": "New-ops-pass-2026!", "new_password2": "New-ops-pass-2026!"},
        )
        assert response.status_code == 302
        event = AuditEvent.objects.get(verb="user.password_change")
        assert (event.actor, event.payload["own"]) == (ops, True)


class TestDeviceAudit:
    def test_adding_changing_and_removing_a_device_is_audited_but_logging_in_is_not(self, ops):
        device = TOTPDevice.objects.create(user=ops, name="phone", confirmed=False)
        device.confirmed = True
        device.save()
        device.verify_token(_token(device))  # a log-in saves the device's counters
        device.delete()
        verbs = list(
            AuditEvent.objects.filter(object_id=str(ops.pk), verb__startswith="user.otp")
            .order_by("created_at", "id")
            .values_list("verb", flat=True)
        )
        assert verbs == ["user.otp_device_add", "user.otp_device_change", "user.otp_device_remove"]
        assert all("key" not in str(e.payload.get("device")) for e in AuditEvent.objects.all())

    def test_a_password_set_from_a_command_is_audited_without_an_actor(self, ops):
        ops.set_password("From-the-shell-2026!")
        ops.save()
        event = AuditEvent.objects.get(verb="user.password_change")
        assert event.actor is None and event.actor_repr == "system"


class TestEveryDoor:
    """RELIABILITY T17 on every face: each API operation of the schema and each portal page answers a staff
    session without its second factor exactly as it answers a logged-in outsider (an account of no firm and
    no role). A route added later is covered without a new row."""

    @pytest.fixture
    def objects(self, provider, in_review):
        from tests.compliance.factories import filing

        document = filing(provider, "pipia_report", products=[in_review])
        api_key, _ = services.api_key_create(
            firm=provider.membership.firm, user=provider, name="door", scopes=["read"], actor=provider
        )
        return {
            "id": in_review.pk,
            "plan_id": in_review.plans.get().pk,
            "filing_id": document.pk,
            "pk": in_review.pk,
            "key_id": api_key.pk,
        }

    @staticmethod
    def _object_id(path: str, objects) -> int:
        if "/filings/" in path:
            return objects["filing_id"]
        if "api-keys/" in path:
            return objects["key_id"]
        return objects["id"]

    @pytest.fixture
    def outsider(self, db):
        return UserFactory(email="visitor@nowhere.example")

    @staticmethod
    def _api_operations(objects):
        from drf_spectacular.generators import SchemaGenerator

        schema = SchemaGenerator().get_schema(request=None, public=True)
        for template, operations in schema["paths"].items():
            for method in operations:
                if method not in {"get", "post", "patch", "put", "delete"}:
                    continue
                yield method, template.format(**dict(objects, id=TestEveryDoor._object_id(template, objects)))

    @staticmethod
    def _answer(client, method, path):
        response = getattr(client, method)(path, {}, format="json") if method != "get" else client.get(path)
        return response.status_code

    @pytest.mark.parametrize("staff", STAFF, indirect=True)
    def test_the_api_answers_as_to_an_outsider(self, staff, outsider, objects):
        as_staff, as_outsider = APIClient(), APIClient()
        login_as(as_staff, staff)
        login_as(as_outsider, outsider)
        differences = {}
        for method, path in self._api_operations(objects):
            got, expected = self._answer(as_staff, method, path), self._answer(as_outsider, method, path)
            if got != expected:
                differences[f"{method.upper()} {path}"] = (got, expected)
        assert differences == {}
        assert len(list(self._api_operations(objects))) >= 20  # the schema was read, not an empty list

    @pytest.mark.parametrize("staff", STAFF, indirect=True)
    def test_the_portal_answers_as_to_an_outsider(self, client, staff, outsider, objects):
        from django.urls import URLPattern, URLResolver, get_resolver

        def pages(resolver, prefix=""):
            for entry in resolver.url_patterns:
                if isinstance(entry, URLResolver):
                    yield from pages(entry, prefix + str(entry.pattern))
                elif isinstance(entry, URLPattern):
                    yield prefix + str(entry.pattern)

        paths = []
        for route in pages(get_resolver()):
            if not route.startswith("portal/"):
                continue
            route = route.replace("<int:plan_pk>", str(objects["plan_id"]))
            route = route.replace("<int:pk>", str(objects["key_id"] if "api-keys/" in route else objects["pk"]))
            paths.append("/" + route)
        assert len(paths) >= 15
        outsider_client = Client()
        login_as(client, staff)
        login_as(outsider_client, outsider)
        differences = {}
        for path in paths:
            got, expected = client.get(path).status_code, outsider_client.get(path).status_code
            if got != expected:
                differences[path] = (got, expected)
        assert differences == {}


def test_the_code_field_is_shown_only_where_it_is_asked_for(client, settings):
    assert 'name="otp_token"' in client.get(reverse("login")).content.decode()
    settings.ADMIN_REQUIRE_OTP = False
    assert 'name="otp_token"' not in client.get(reverse("login")).content.decode()


class TestReviewFindings:
    """What a second hostile review found after the first fixes."""

    def test_an_unusable_password_set_in_the_admin_is_audited(self, ops_client, ops, provider):
        url = reverse("admin:auth_user_password_change", args=[provider.pk])
        response = ops_client.post(url, {"usable_password": "false", "unset-password": "1"})
        assert response.status_code == 302
        provider.refresh_from_db()
        assert not provider.has_usable_password()
        event = AuditEvent.objects.get(verb="user.password_change", object_id=str(provider.pk))
        assert event.actor == ops and event.payload["usable"] is False

    def test_createsuperuser_is_audited(self, monkeypatch, db):
        from django.core.management import call_command

        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Root-two-2026!")
        call_command("createsuperuser", "--noinput", "--email", "root2@exchange.example", verbosity=0)
        event = AuditEvent.objects.get(verb="user.create_staff")
        assert event.object_repr == "root2@exchange.example" and event.payload == {"staff": True, "superuser": True}

    def test_group_permission_changes_are_audited(self, client, superuser):
        from django.contrib.auth.models import Group, Permission

        from exchange import roles

        group = roles.sync_staff_roles()[roles.SETTLEMENT_CLERKS]
        login_as(client, superuser)
        session = client.session
        device = TOTPDevice.objects.create(user=superuser, name="phone", confirmed=True)
        session["otp_device_id"] = device.persistent_id
        session.save()
        review = Permission.objects.get(codename="review_dataproduct")
        permissions = [*group.permissions.values_list("pk", flat=True), review.pk]
        response = client.post(
            reverse("admin:auth_group_change", args=[group.pk]), {"name": group.name, "permissions": permissions}
        )
        assert response.status_code == 302
        event = AuditEvent.objects.get(verb="group.permissions")
        assert event.actor == superuser and event.payload["added"] == ["listings.review_dataproduct"]
        assert Group.objects.get(pk=group.pk).permissions.filter(pk=review.pk).exists()

    def test_an_administrator_cannot_place_a_staff_account_in_a_firm(self, ops_client, superuser, provider):
        firm = provider.membership.firm
        url = reverse("admin:exchange_memberfirm_change", args=[firm.pk])
        page = ops_client.get(url)
        assert page.status_code == 200
        form = page.context["adminform"].form
        data = {name: form.initial.get(name) or "" for name in form.fields}
        data.update({k: v for k, v in data.items() if v is not None})
        formset = page.context["inline_admin_formsets"][0].formset
        prefix = formset.prefix
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(len(formset.forms) + 1),
                f"{prefix}-INITIAL_FORMS": str(len(formset.forms)),
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
        for i, inline in enumerate(formset.forms):
            data[f"{prefix}-{i}-id"] = str(inline.instance.pk)
            data[f"{prefix}-{i}-user"] = str(inline.instance.user_id)
            data[f"{prefix}-{i}-role"] = inline.instance.role
            data[f"{prefix}-{i}-firm"] = str(firm.pk)
        new = len(formset.forms)
        data.update({f"{prefix}-{new}-user": str(superuser.pk), f"{prefix}-{new}-role": "trader", f"{prefix}-{new}-firm": str(firm.pk)})
        response = ops_client.post(url, data)
        assert response.status_code == 200  # the form again, with the error
        assert "Only a superuser may change an exchange staff account" in response.content.decode()
        assert not Membership.objects.filter(user=superuser).exists()

    def test_the_services_refuse_it_too(self, ops, superuser, provider):
        from exchange.exceptions import NotAllowed

        firm = provider.membership.firm
        with pytest.raises(NotAllowed):
            services.membership_add(user=superuser, firm=firm, role=Membership.Role.TRADER, actor=ops)
        services.membership_add(user=superuser, firm=firm, role=Membership.Role.TRADER, actor=superuser)
        with pytest.raises(NotAllowed):
            services.api_key_create(firm=firm, user=superuser, name="x", scopes=["read"], actor=ops)
        with pytest.raises(NotAllowed):
            services.api_key_create(firm=firm, user=superuser, name="x", scopes=["read"], actor=provider)

    def test_a_staff_session_ends_after_its_age_however_busy(self, client, settings, reviewer, in_review):
        import time_machine

        settings.ADMIN_REQUIRE_OTP = False
        with time_machine.travel("2026-12-01 09:00:00+00:00", tick=False) as clock:
            login_as(client, reviewer)
            assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 200
            clock.shift(settings.STAFF_SESSION_AGE - 60)
            assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 200
            clock.shift(120)
            assert client.get(f"/api/v1/products/{in_review.pk}").status_code == 401
            assert "_auth_user_id" not in client.session

    def test_a_member_made_staff_mid_session_logs_in_again(self, client, settings, provider):
        settings.ADMIN_REQUIRE_OTP = False
        login_as(client, provider)
        provider.is_staff = True
        provider.save()
        assert client.get("/portal/").status_code == 302  # to the log-in


def test_a_spoofed_forwarded_for_does_not_escape_the_anonymous_throttle(boards):
    from django.core.cache import cache
    from rest_framework.settings import api_settings
    from rest_framework.throttling import AnonRateThrottle

    cache.clear()
    rate = AnonRateThrottle().parse_rate(api_settings.DEFAULT_THROTTLE_RATES["anon"])[0]
    client = APIClient()
    statuses = [
        client.get("/api/v1/products", HTTP_X_FORWARDED_FOR=f"10.0.{i // 250}.{i % 250}").status_code
        for i in range(rate + 1)
    ]
    assert statuses[-1] == 429


def test_loading_users_without_their_passwords_fetches_nothing_more(django_assert_num_queries, ops, provider):
    from exchange.models import User

    with django_assert_num_queries(1):
        emails = [u.email for u in User.objects.only("email")]
    assert "ops@exchange.example" in emails and provider.email in emails
