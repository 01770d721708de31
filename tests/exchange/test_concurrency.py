"""Races on the core's shared rows, with real concurrent connections and committed transactions."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from exchange import services
from exchange.exceptions import ApplicationError, InvalidTransition
from exchange.models import ApiKey, AuditEvent
from exchange.selectors import board_codes_for_firm
from tests.factories import MemberFirmFactory, member

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def _race(target):
    barrier = threading.Barrier(THREADS)
    results, errors = [], []

    def run(i):
        try:
            barrier.wait(timeout=10)
            results.append(target(i))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_concurrent_audit_appends_keep_one_unbroken_chain(ops):
    before = AuditEvent.objects.count()
    results, errors = _race(lambda i: services.audit_record(actor=ops, verb="test.race", payload={"i": i}).seq)
    assert errors == []
    assert sorted(results) == list(range(before + 1, before + THREADS + 1))
    assert services.audit_verify() == []


def test_concurrent_admissions_admit_once(ops, boards):
    firm = MemberFirmFactory()
    results, errors = _race(lambda i: services.firm_admit(firm=firm, board=boards["international"], actor=ops))
    assert len(results) == 1
    assert len(errors) == THREADS - 1
    assert all(isinstance(e, ApplicationError) and e.code == "already_admitted" for e in errors), errors
    assert board_codes_for_firm(firm=firm) == {"international"}
    assert AuditEvent.objects.filter(verb="board.admit", object_id=str(firm.pk)).count() == 1


@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks need PostgreSQL")
def test_concurrent_key_creations_stay_within_the_firms_limit(provider, settings):
    # given a firm allowed 3 active keys, holding one
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 3
    firm = provider.membership.firm
    services.api_key_create(firm=firm, user=provider, name="first", scopes=["read"], actor=provider)

    # when its administrator creates eight more at the same moment
    results, errors = _race(
        lambda i: services.api_key_create(firm=firm, user=provider, name=f"k{i}", scopes=["read"], actor=provider)
    )

    # then two fit and the others are refused with the limit's code
    assert len(results) == 2, errors
    assert len(errors) == THREADS - 2
    assert all(isinstance(e, ApplicationError) and e.code == "api_key_limit" for e in errors), errors
    assert ApiKey.objects.filter(firm=firm).count() == 3


@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks need PostgreSQL")
def test_concurrent_rotations_and_revocations_of_one_key_act_once(provider):
    # given a key
    firm = provider.membership.firm
    old, _ = services.api_key_create(firm=firm, user=provider, name="ERP", scopes=["read"], actor=provider)

    # when it is rotated and revoked from eight places at once
    def act(i):
        if i % 2:
            return services.api_key_revoke(api_key=old, actor=provider)
        return services.api_key_rotate(api_key=old, actor=provider)[0]

    results, errors = _race(act)

    # then exactly one of them got it, the others were told it is revoked
    assert len(results) == 1, errors
    assert all(isinstance(e, InvalidTransition) for e in errors), errors
    rotated = AuditEvent.objects.filter(verb="api_key.rotate").count()
    assert ApiKey.objects.filter(firm=firm, revoked_at__isnull=True).count() == rotated
    assert AuditEvent.objects.filter(verb="api_key.revoke", object_id=str(old.pk)).count() == 1
    assert services.audit_verify() == []


@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks need PostgreSQL")
def test_concurrent_creations_and_rotations_stay_within_the_firms_limit(provider, settings):
    # given a firm allowed 3 active keys, holding two and a lapsed one: room for one more
    settings.API_KEY_MAX_ACTIVE_PER_FIRM = 3
    firm = provider.membership.firm
    for name in ("a", "b"):
        services.api_key_create(firm=firm, user=provider, name=name, scopes=["read"], actor=provider)
    lapsed, _ = services.api_key_create(firm=firm, user=provider, name="old", scopes=["read"], actor=provider)
    ApiKey.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    # when new keys are made and the lapsed one rotated, all at once
    def act(i):
        if i % 2:
            return services.api_key_rotate(api_key=lapsed, actor=provider)[0]
        return services.api_key_create(firm=firm, user=provider, name=f"k{i}", scopes=["read"], actor=provider)[0]

    results, errors = _race(act)

    # then one fits; a refused rotation left the lapsed key as it was
    assert len(results) == 1, errors
    assert all(isinstance(e, ApplicationError) and e.code in {"api_key_limit", "invalid_transition"} for e in errors)
    assert ApiKey.objects.filter(firm=firm, revoked_at__isnull=True, expires_at__gt=timezone.now()).count() == 3
    lapsed.refresh_from_db()
    assert (lapsed.revoked_at is not None) == (AuditEvent.objects.filter(verb="api_key.rotate").count() == 1)


@pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks need PostgreSQL")
def test_a_member_leaving_while_their_key_is_rotated_keeps_no_key(provider, ops):
    # given a trader's keys; when the trader leaves while an administrator rotates them (the two take the
    # member's and the keys' locks in the same order, so neither deadlocks the other)
    firm = provider.membership.firm
    trader = member(firm, "trader")
    keys = [
        services.api_key_create(firm=firm, user=trader, name=f"k{i}", scopes=["read"], actor=provider)[0]
        for i in range(THREADS - 1)
    ]
    membership = trader.membership

    def act(i):
        if i == 0:
            return services.membership_remove(membership=membership, actor=ops)
        return services.api_key_rotate(api_key=keys[i - 1], actor=provider)[0]

    results, errors = _race(act)

    # then no key acts for the trader any more, whichever came first
    assert all(isinstance(e, ApplicationError) for e in errors), errors
    assert not ApiKey.objects.filter(user=trader, revoked_at__isnull=True).exists()
