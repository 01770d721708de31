"""The audit trail is append-only and its hash chains show any row altered or deleted behind their back.

The `trail` fixture is one chain's: each test runs on chain 1 and on another (tests/exchange/conftest.py).
"""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from exchange import services
from exchange.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db


def test_rows_are_chained_in_sequence(trail):
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))
    assert trail[0].prev_hash == ""
    for previous, event in zip(trail, trail[1:], strict=False):
        assert event.prev_hash == previous.hash
    head = AuditChainHead.objects.get(id=trail[0].chain)
    assert (head.last_seq, head.last_hash) == (trail[-1].seq, trail[-1].hash)


def test_verify_audit_passes_on_an_intact_trail(trail, capsys):
    call_command("verify_audit")
    assert f"intact: {len(trail)} events" in capsys.readouterr().out


def _raw(sql, params):
    """Tamper as someone with direct database access would, past the ORM's refusal.

    On PostgreSQL that someone must first switch triggers off (session_replication_role, a superuser's
    right), past the append-only trigger; the hash chain still shows what they did.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only")
@pytest.mark.parametrize(
    "sql",
    ["UPDATE exchange_auditevent SET verb = 'forged' WHERE id = %s", "DELETE FROM exchange_auditevent WHERE id = %s"],
)
def test_postgresql_refuses_raw_updates_and_deletes(trail, sql):
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [trail[0].pk])
    assert services.audit_verify() == []


def test_verify_audit_fails_after_a_row_is_altered_in_the_database(trail):
    victim = trail[1]
    _raw("UPDATE exchange_auditevent SET payload = %s WHERE id = %s", ['{"board": "international"}', victim.pk])
    with pytest.raises(CommandError, match="broken"):
        call_command("verify_audit")
    assert services.audit_verify() == [
        f"event #{victim.seq} of chain {victim.chain} was altered (its content does not match its hash)"
    ]


def test_rehashing_an_altered_row_still_breaks_the_chain(trail):
    victim = trail[0]
    victim.verb = "board.revoke"
    forged = services.audit_event_hash(victim)
    _raw("UPDATE exchange_auditevent SET verb = %s, hash = %s WHERE id = %s", ["board.revoke", forged, victim.pk])
    problems = services.audit_verify()
    assert problems == [f"event #{trail[1].seq} of chain {victim.chain} does not follow its predecessor (chain broken)"]


def test_verify_audit_fails_after_a_row_is_deleted(trail):
    _raw("DELETE FROM exchange_auditevent WHERE id = %s", [trail[1].pk])
    with pytest.raises(CommandError):
        call_command("verify_audit")
    assert services.audit_verify() == [
        f"event #{trail[1].seq} of chain {trail[1].chain} is missing (next found is #{trail[2].seq})",
        f"event #{trail[2].seq} of chain {trail[1].chain} does not follow its predecessor (chain broken)",
    ]


def test_verify_audit_notices_a_deleted_tail(trail):
    _raw("DELETE FROM exchange_auditevent WHERE id = %s", [trail[-1].pk])
    assert services.audit_verify() == [
        f"chain {trail[-1].chain} should end at event #{trail[-1].seq} but ends at #{trail[-2].seq} "
        "(events deleted or altered)"
    ]


def test_the_orm_refuses_updates_and_deletes(trail):
    event = trail[0]
    event.verb = "something.else"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(verb="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert services.audit_verify() == []


def test_the_payload_keeps_decimals_and_chinese_text_verifiable(ops):
    from decimal import Decimal

    services.audit_record(actor=ops, verb="test.money", payload={"amount": Decimal("10.05"), "名称": "国际板"})
    event = AuditEvent.objects.get(verb="test.money")
    assert event.payload == {"amount": "10.05", "名称": "国际板"}
    assert services.audit_verify() == []


def test_the_nightly_task_reports_the_same(trail):
    from exchange.tasks import audit_verify_task

    assert audit_verify_task.delay().get() == {"intact": True, "problems": []}
    _raw("UPDATE exchange_auditevent SET actor_repr = %s WHERE id = %s", ["mallory@example.com", trail[0].pk])
    result = audit_verify_task.delay().get()
    assert result["intact"] is False and len(result["problems"]) == 1
