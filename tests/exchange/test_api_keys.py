import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from exchange import services
from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed
from exchange.models import ApiKey, AuditEvent
from exchange.security import without_staff_powers
from tests.factories import MemberFirmFactory, member

pytestmark = pytest.mark.django_db


def test_the_raw_key_is_returned_once_and_only_its_hash_is_stored(provider):
    firm = provider.membership.firm
    api_key, raw_key = services.api_key_create(firm=firm, user=provider, name="ERP", scopes=["read"], actor=provider)
    assert raw_key.startswith(f"dxk_{api_key.prefix}_")
    stored = ApiKey.objects.get()
    assert stored.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key not in str(ApiKey.objects.values().get())
    assert raw_key not in str(AuditEvent.objects.values_list("payload", flat=True).get(verb="api_key.create"))
    assert stored.expires_at > timezone.now() + timedelta(days=364)


def test_a_trader_cannot_create_keys_for_the_firm(provider):
    firm = provider.membership.firm
    trader = member(firm, "trader")
    with pytest.raises(NotAllowed):
        services.api_key_create(firm=firm, user=trader, name="mine", scopes=["read"], actor=trader)


def test_a_firm_admin_creates_keys_for_its_members_only(provider, domestic):
    firm = provider.membership.firm
    trader = member(firm, "trader")
    services.api_key_create(firm=firm, user=trader, name="desk", scopes=["read", "trade"], actor=provider)
    with pytest.raises(ApplicationError) as exc:
        services.api_key_create(firm=firm, user=domestic, name="theirs", scopes=["read"], actor=provider)
    assert exc.value.code == "not_a_member"
    with pytest.raises(NotAllowed):
        services.api_key_create(firm=domestic.membership.firm, user=domestic, name="x", scopes=["read"], actor=provider)


def test_staff_with_the_permission_create_keys(ops, clerk, provider):
    firm = provider.membership.firm
    services.api_key_create(firm=firm, user=provider, name="by ops", scopes=["read"], actor=ops)
    with pytest.raises(NotAllowed):
        services.api_key_create(firm=firm, user=provider, name="by clerk", scopes=["read"], actor=clerk)


def test_a_firm_holds_a_bounded_number_of_active_keys(provider, settings):
    # given a firm at its limit of active keys
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 3
    firm = provider.membership.firm
    keys = [
        services.api_key_create(firm=firm, user=provider, name=f"k{i}", scopes=["read"], actor=provider)[0]
        for i in range(3)
    ]
    with pytest.raises(ApplicationError) as exc:
        services.api_key_create(firm=firm, user=provider, name="one more", scopes=["read"], actor=provider)
    assert exc.value.code == "api_key_limit"

    # when a key is revoked and another lapses, two new ones fit
    services.api_key_revoke(api_key=keys[0], actor=provider)
    ApiKey.objects.filter(pk=keys[1].pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    for name in ("new 1", "new 2"):
        services.api_key_create(firm=firm, user=provider, name=name, scopes=["read"], actor=provider)

    # then
    with pytest.raises(ApplicationError):
        services.api_key_create(firm=firm, user=provider, name="no room", scopes=["read"], actor=provider)
    assert ApiKey.objects.filter(firm=firm).count() == 5


@pytest.mark.parametrize("scopes", [[], ["admin"], ["read", "delete"]])
def test_scopes_are_read_trade_and_keys_only(provider, scopes):
    with pytest.raises(ApplicationError) as exc:
        services.api_key_create(firm=provider.membership.firm, user=provider, name="k", scopes=scopes, actor=provider)
    assert exc.value.code == "invalid_scopes"
    assert not ApiKey.objects.exists()


def test_expiry_must_be_in_the_future(provider):
    with pytest.raises(ApplicationError) as exc:
        services.api_key_create(
            firm=provider.membership.firm,
            user=provider,
            name="k",
            scopes=["read"],
            actor=provider,
            expires_at=timezone.now() - timedelta(seconds=1),
        )
    assert exc.value.code == "invalid_expiry"


def test_revoking_twice_is_refused_and_audited_once(provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    services.api_key_revoke(api_key=api_key, actor=provider)
    with pytest.raises(InvalidTransition) as exc:
        services.api_key_revoke(api_key=api_key, actor=provider)
    assert exc.value.code == "invalid_transition" and exc.value.status_code == 409
    assert AuditEvent.objects.filter(verb="api_key.revoke").count() == 1
    api_key.refresh_from_db()
    assert api_key.revoked_by == provider


def test_another_firms_admin_cannot_revoke(provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="k", scopes=["read"], actor=provider
    )
    outsider = member(MemberFirmFactory(), "firm_admin")
    with pytest.raises(NotAllowed):
        services.api_key_revoke(api_key=api_key, actor=outsider)


def test_leaving_the_firm_revokes_the_members_keys(provider, ops):
    firm = provider.membership.firm
    colleague = member(firm, "trader")
    mine, _ = services.api_key_create(firm=firm, user=provider, name="mine", scopes=["read"], actor=provider)
    theirs, _ = services.api_key_create(firm=firm, user=colleague, name="theirs", scopes=["read"], actor=provider)
    # when
    services.membership_remove(membership=colleague.membership, actor=ops)
    # then
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert theirs.revoked_at is not None and theirs.revoked_by == ops
    assert mine.revoked_at is None
    event = AuditEvent.objects.get(verb="membership.remove")
    assert event.payload == {"user": colleague.email, "api_keys_revoked": [theirs.prefix]}


def test_expiry_is_at_most_two_years_ahead(provider):
    with pytest.raises(ApplicationError) as exc:
        services.api_key_create(
            firm=provider.membership.firm,
            user=provider,
            name="k",
            scopes=["read"],
            actor=provider,
            expires_at=timezone.now() + ApiKey.MAX_LIFETIME + timedelta(minutes=1),
        )
    assert exc.value.code == "invalid_expiry" and list(exc.value.details) == ["expires_at"]
    assert not ApiKey.objects.exists()


def test_the_keys_scope_is_a_scope_like_the_others(provider):
    api_key, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="ops", scopes=["keys"], actor=provider
    )
    assert api_key.scopes == ["keys"] and api_key.scope_labels == ["Manage API keys"]


# --- Through an API key: never more than the key holds ---------------------------------------------------


def _key(user, scopes, **kwargs):
    return services.api_key_create(
        firm=user.membership.firm, user=user, name="acting", scopes=scopes, actor=user, **kwargs
    )[0]


def test_a_key_creates_keys_within_its_own_scopes(provider):
    # given a key holding read and keys
    acting = _key(provider, ["read", "keys"])
    # when it asks for trade as well, then it is refused and nothing is made
    with pytest.raises(NotAllowed) as exc:
        services.api_key_create(
            firm=provider.membership.firm,
            user=provider,
            name="more",
            scopes=["read", "trade"],
            actor=provider,
            actor_key=acting,
        )
    assert exc.value.code == "insufficient_scope" and exc.value.details == {"scopes": ["trade"]}
    assert ApiKey.objects.count() == 1
    # and within its scopes it may
    made, _ = services.api_key_create(
        firm=provider.membership.firm, user=provider, name="less", scopes=["read"], actor=provider, actor_key=acting
    )
    assert made.scopes == ["read"]


def test_a_key_rotates_only_keys_within_its_own_scopes(provider):
    trade_key = _key(provider, ["read", "trade"])
    acting = _key(provider, ["read", "keys"])
    with pytest.raises(NotAllowed) as exc:
        services.api_key_rotate(api_key=trade_key, actor=provider, actor_key=acting)
    assert exc.value.code == "insufficient_scope"
    trade_key.refresh_from_db()
    assert trade_key.revoked_at is None and ApiKey.objects.count() == 2


def test_a_staff_account_gets_no_key_through_a_key(provider, superuser, ops):
    # given a staff account that a superuser made administrator of a firm, and a key it holds
    firm = provider.membership.firm
    services.membership_add(user=ops, firm=firm, role="firm_admin", actor=superuser)
    staff_key, _ = services.api_key_create(firm=firm, user=ops, name="ops", scopes=["read", "keys"], actor=superuser)
    # when it acts through that key, as exchange.authentication hands it over: stripped of its staff powers
    as_key_user = without_staff_powers(ops)
    # then it makes no key that acts for itself (a staff account), and rotates none
    with pytest.raises(NotAllowed) as exc:
        services.api_key_create(
            firm=firm, user=as_key_user, name="x", scopes=["read"], actor=as_key_user, actor_key=staff_key
        )
    assert exc.value.code == "staff_account"
    with pytest.raises(NotAllowed):
        services.api_key_rotate(api_key=staff_key, actor=as_key_user, actor_key=staff_key)
    assert ApiKey.objects.filter(user=ops, revoked_at__isnull=True).count() == 1


# --- Rotation --------------------------------------------------------------------------------------------


def test_rotation_replaces_a_key_with_the_same_name_scopes_and_lifetime(provider, time_machine):
    # given a 30-day key of a trader, made 10 days ago
    firm = provider.membership.firm
    trader = member(firm, "trader")
    time_machine.move_to(timezone.now() - timedelta(days=10), tick=False)
    old, old_raw = services.api_key_create(
        firm=firm,
        user=trader,
        name="ERP",
        scopes=["read", "trade"],
        actor=provider,
        expires_at=timezone.now() + timedelta(days=30),
    )
    time_machine.move_to(timezone.now() + timedelta(days=10), tick=False)

    # when its firm's administrator rotates it
    new, raw = services.api_key_rotate(api_key=old, actor=provider)

    # then the new key has its name, scopes and member, 30 days from now, and the old one is revoked
    old.refresh_from_db()
    assert old.revoked_at == timezone.now() and old.revoked_by == provider
    assert (new.name, new.scopes, new.user, new.created_by) == ("ERP", ["read", "trade"], trader, provider)
    assert new.expires_at == timezone.now() + timedelta(days=30)
    assert (
        raw.startswith(f"dxk_{new.prefix}_")
        and raw != old_raw
        and new.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    )
    # and both steps are in the audit trail, each naming the other key
    revoke = AuditEvent.objects.get(verb="api_key.revoke")
    rotate = AuditEvent.objects.get(verb="api_key.rotate")
    assert (revoke.object_id, revoke.payload["replaced_by"]) == (str(old.pk), new.prefix)
    assert (rotate.object_id, rotate.payload["replaces"]) == (str(new.pk), old.prefix)
    assert rotate.actor == provider and raw not in str(rotate.payload)
    assert services.audit_verify() == []


def test_rotating_a_revoked_key_is_refused_and_makes_nothing(provider):
    old = _key(provider, ["read"])
    services.api_key_revoke(api_key=old, actor=provider)
    with pytest.raises(InvalidTransition):
        services.api_key_rotate(api_key=old, actor=provider)
    assert ApiKey.objects.count() == 1
    assert not AuditEvent.objects.filter(verb="api_key.rotate").exists()


def test_rotation_at_the_firms_limit_replaces_the_key(provider, settings):
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 2
    first, second = _key(provider, ["read"]), _key(provider, ["read"])
    new, _ = services.api_key_rotate(api_key=first, actor=provider)
    assert set(ApiKey.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True)) == {second.pk, new.pk}


def test_rotating_a_lapsed_key_counts_against_the_limit_and_fails_whole(provider, settings):
    # given a firm at its limit of active keys, and a lapsed key besides
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 1
    lapsed = _key(provider, ["read"])
    ApiKey.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    _key(provider, ["read"])
    # when the lapsed one is rotated, then the limit refuses the new key and the old one stays as it was
    with pytest.raises(ApplicationError) as exc:
        services.api_key_rotate(api_key=lapsed, actor=provider)
    assert exc.value.code == "api_key_limit"
    lapsed.refresh_from_db()
    assert lapsed.revoked_at is None and ApiKey.objects.count() == 2
    assert not AuditEvent.objects.filter(verb__in=["api_key.revoke", "api_key.rotate"]).exists()


def test_a_rotated_key_lives_at_most_two_years(provider, ops):
    old = _key(provider, ["read"])
    # a key from before the limit, made by staff for five years
    ApiKey.objects.filter(pk=old.pk).update(expires_at=old.created_at + timedelta(days=5 * 365))
    old.refresh_from_db()
    new, _ = services.api_key_rotate(api_key=old, actor=provider)
    assert new.expires_at - new.created_at <= ApiKey.MAX_LIFETIME


def test_traders_and_other_firms_rotate_nothing(provider):
    old = _key(provider, ["read"])
    for actor in (member(provider.membership.firm, "trader"), member(MemberFirmFactory(), "firm_admin")):
        with pytest.raises(NotAllowed):
            services.api_key_rotate(api_key=old, actor=actor)
    old.refresh_from_db()
    assert old.revoked_at is None and ApiKey.objects.count() == 1
