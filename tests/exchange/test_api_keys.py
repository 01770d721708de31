import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from exchange import services
from exchange.exceptions import ApplicationError, NotAllowed
from exchange.models import ApiKey, AuditEvent
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
def test_scopes_are_read_and_trade_only(provider, scopes):
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
    with pytest.raises(ApplicationError) as exc:
        services.api_key_revoke(api_key=api_key, actor=provider)
    assert exc.value.code == "already_revoked"
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
