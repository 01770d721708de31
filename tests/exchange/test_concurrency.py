"""Races on the core's shared rows, with real concurrent connections and committed transactions."""

import threading

import pytest
from django.conf import settings
from django.db import connections

from exchange import services
from exchange.exceptions import ApplicationError
from exchange.models import ApiKey, AuditEvent
from exchange.selectors import board_codes_for_firm
from tests.factories import MemberFirmFactory

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
