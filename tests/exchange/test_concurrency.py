"""Races on the core's shared rows, with real concurrent connections and committed transactions."""

import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections, transaction
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


postgresql_only = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="row locks need PostgreSQL"
)


def _seqs_by_chain() -> dict[int, list[int]]:
    seqs: dict[int, list[int]] = defaultdict(list)
    for chain, seq in AuditEvent.objects.order_by("chain", "seq").values_list("chain", "seq"):
        seqs[chain].append(seq)
    return seqs


def test_concurrent_audit_appends_keep_unbroken_chains(ops):
    before = AuditEvent.objects.count()
    results, errors = _race(lambda i: services.audit_record(actor=ops, verb="test.race", payload={"i": i}))
    assert errors == []
    assert len(results) == THREADS
    # every chain counts 1, 2, 3, ... without a gap or a repeat, and together they hold every event
    seqs = _seqs_by_chain()
    assert all(chain_seqs == list(range(1, len(chain_seqs) + 1)) for chain_seqs in seqs.values())
    assert sum(map(len, seqs.values())) == before + THREADS
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


# --- The audit chains: appends side by side ------------------------------------------------------------


def _hold_appends_open(writers: int, *, hold) -> tuple[list, list]:
    """`writers` threads start together; each appends in a transaction, calls hold() before committing."""
    start = threading.Barrier(writers)
    results, errors = [], []

    def run(i):
        try:
            start.wait(timeout=10)
            with transaction.atomic():
                event = services.audit_record(actor=None, verb="test.held", payload={"i": i})
                hold()
            results.append(event)
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@postgresql_only
@pytest.mark.parametrize("writers", [4, 3])
def test_as_many_writers_as_chains_hold_their_appends_open_side_by_side(settings, writers):
    # given four chains
    settings.AUDIT_CHAINS = 4
    # when each writer appends and then, its transaction and its head's lock still open, waits until every writer
    # has appended: with one head (or any writer waiting for another's) the barrier would never be reached
    appended = threading.Barrier(writers)
    results, errors = _hold_appends_open(writers, hold=lambda: appended.wait(timeout=10))
    # then all of them got there, each on a chain of its own, and every chain verifies
    assert errors == []
    assert len({event.chain for event in results}) == writers
    assert {event.seq for event in results} == {1}
    assert services.audit_verify() == []


@postgresql_only
def test_more_writers_than_chains_wait_their_turn_and_all_append(settings):
    # given two chains, and six writers that each hold their append open a moment
    settings.AUDIT_CHAINS = 2
    results, errors = _hold_appends_open(6, hold=lambda: time.sleep(0.05))
    # then all append: those that found every head taken waited for one, on the two chains only
    assert errors == []
    assert len(results) == 6
    seqs = _seqs_by_chain()
    assert set(seqs) <= {1, 2}
    assert all(chain_seqs == list(range(1, len(chain_seqs) + 1)) for chain_seqs in seqs.values())
    assert services.audit_verify() == []


@postgresql_only
def test_a_transaction_that_appends_twice_keeps_its_head(settings):
    # given another transaction holding head 1 while this one appends first, then committing before it appends
    # again: head 1, tried first by both, is free by then
    settings.AUDIT_CHAINS = 4
    holding, release = threading.Barrier(2), threading.Event()

    def other():
        services.audit_affinity.chain = 1
        try:
            with transaction.atomic():
                services.audit_record(actor=None, verb="test.other")
                holding.wait(timeout=10)
                release.wait(timeout=10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    try:
        holding.wait(timeout=10)
        with transaction.atomic():
            first = services.audit_record(actor=None, verb="test.first")
            release.set()
            thread.join(timeout=30)
            second = services.audit_record(actor=None, verb="test.second")
    finally:
        release.set()
        thread.join(timeout=30)
    # then both its events are on the head it took first, one after the other: it held one head, not two
    assert first.chain != 1
    assert (second.chain, second.seq, second.prev_hash) == (first.chain, first.seq + 1, first.hash)
    assert services.audit_verify() == []
