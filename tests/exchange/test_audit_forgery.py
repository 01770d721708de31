"""Forging the audit trail as the owner of its tables would shows: keyed hashes and checkpoints outside the database.

The owner can switch the triggers off, rewrite rows, recompute hashes and move the head. It cannot compute an
HMAC under AUDIT_HMAC_KEY, nor rewrite the checkpoints, and verify_audit holds the trail against both.
"""

import hashlib
import hmac
import importlib
import json
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from exchange import services
from exchange.audit import Checkpoint, audit_hash, canonical_json
from exchange.checks import audit_hmac_key
from exchange.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL triggers and roles")


@pytest.fixture
def checkpoints(settings) -> Path:
    return Path(settings.AUDIT_CHECKPOINT_PATH)


def _tamper(*statements: tuple[str, list]) -> None:
    """Write behind the ORM's back; on PostgreSQL first switch every trigger off, as the owner could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")


def _fields(event: AuditEvent) -> dict:
    names = ["chain", "seq", "prev_hash", "created_at", "actor_id", "actor_repr", "verb", "object_type", "object_id"]
    return {name: getattr(event, name) for name in names + ["object_repr", "payload", "request_id"]}


def _rechained(key: bytes | None) -> list[tuple[str, list]]:
    """UPDATEs that rewrite the first event and re-hash the whole chain under `key` (None: plain SHA-256)."""
    statements, prev = [], ""
    for event in AuditEvent.objects.order_by("seq"):
        if event.seq == 1:
            event.actor_repr = "mallory@example.com"
        event.prev_hash = prev
        event.hash = prev = audit_hash(key=key, **_fields(event))
        statements.append(
            (
                "UPDATE exchange_auditevent SET actor_repr = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.actor_repr, event.prev_hash, event.hash, event.pk],
            )
        )
    statements.append(("UPDATE exchange_auditchainhead SET last_hash = %s WHERE id = %s", [prev, event.chain]))
    return statements


def test_rows_are_hashed_with_the_key_not_plain_sha256(trail, settings):
    event = trail[-1]
    assert event.hash == audit_hash(key=settings.AUDIT_HMAC_KEY.encode(), **_fields(event))
    assert event.hash != audit_hash(key=None, **_fields(event))
    assert services.audit_verify() == []


def test_an_altered_row_is_reported(trail):
    _tamper(("UPDATE exchange_auditevent SET verb = %s WHERE id = %s", ["board.revoke", trail[1].pk]))
    assert services.audit_verify() == [
        f"event #{trail[1].seq} of chain {trail[1].chain} was altered (its content does not match its hash)"
    ]


@pytest.mark.parametrize("key", [None, b"a key other than the exchange's"], ids=["unkeyed", "other-key"])
def test_a_chain_rehashed_without_the_key_is_reported(trail, key):
    # given a trail the owner rewrote and re-hashed from its first row on, head included
    _tamper(*_rechained(key))
    # when / then
    with pytest.raises(CommandError, match="broken"):
        call_command("verify_audit")
    problems = services.audit_verify()
    chain = trail[0].chain
    if key is None and chain == 1:
        assert problems == [
            f"events #1 to #{trail[-1].seq} of chain 1 are hashed without the audit key and no keyed event follows "
            "them (forged, or never sealed by migration 0005)"
        ]
    else:
        # Unkeyed rows are believed only as the start of chain 1, the chain that existed before keyed hashes.
        altered = "was altered (its content does not match its hash)"
        assert problems == [f"event #{e.seq} of chain {chain} {altered}" for e in trail]


def test_the_key_in_force_decides(trail, settings):
    settings.AUDIT_HMAC_KEY = "another key, as after a careless rotation"
    assert len(services.audit_verify()) == len(trail)


# --- Rows from before keyed hashing ------------------------------------------------------------------


def _unkeyed_rows(count: int) -> list[AuditEvent]:
    from django.utils import timezone

    prev, rows = "", []
    for seq in range(1, count + 1):
        event = AuditEvent(seq=seq, created_at=timezone.now(), actor_repr="system", verb="legacy.step", prev_hash=prev)
        event.hash = prev = audit_hash(key=None, **_fields(event))
        event.save(force_insert=True)
        rows.append(event)
    AuditChainHead.objects.update_or_create(id=1, defaults={"last_seq": count, "last_hash": prev})
    return rows


def _seal() -> None:
    from django.apps import apps

    migration = importlib.import_module("exchange.migrations.0005_audit_keyed_chain")
    migration.seal_unkeyed_rows(apps, None)


def test_unkeyed_rows_are_believed_once_sealed_by_a_keyed_row(monkeypatch):
    # given a trail written before migration 0005 (plain SHA-256)
    rows = _unkeyed_rows(3)
    assert services.audit_verify() == [
        "events #1 to #3 of chain 1 are hashed without the audit key and no keyed event follows them "
        "(forged, or never sealed by migration 0005)"
    ]
    # when the migration seals it
    _seal()
    # then the trail is intact and ends in the keyed seal, which a second run does not repeat
    seal = AuditEvent.objects.get(chain=1, seq=4)
    assert (seal.verb, seal.payload, seal.prev_hash) == ("audit.seal", {"unkeyed_through": 3}, rows[-1].hash)
    assert services.audit_verify() == []
    _seal()
    assert AuditEvent.objects.count() == 4
    # and new events chain on with the key, on chain 1 and on the others
    services.audit_record(actor=None, verb="test.after")
    assert AuditEvent.objects.get(verb="test.after").seq == 5
    monkeypatch.setattr(services.audit_affinity, "chain", 2)
    services.audit_record(actor=None, verb="test.elsewhere")
    assert AuditEvent.objects.get(verb="test.elsewhere").seq == 1
    assert services.audit_verify() == []


def test_a_sealed_unkeyed_row_cannot_be_rewritten():
    _unkeyed_rows(2)
    _seal()
    victim = AuditEvent.objects.get(chain=1, seq=1)
    victim.verb = "legacy.forged"
    forged = audit_hash(key=None, **_fields(victim))
    _tamper(("UPDATE exchange_auditevent SET verb = %s, hash = %s WHERE id = %s", [victim.verb, forged, victim.pk]))
    assert services.audit_verify() == ["event #2 of chain 1 does not follow its predecessor (chain broken)"]


def test_an_unkeyed_row_after_a_keyed_one_is_altered(trail):
    victim = trail[-1]
    victim.verb = "board.revoke"
    forged = audit_hash(key=None, **_fields(victim))
    _tamper(
        ("UPDATE exchange_auditevent SET verb = %s, hash = %s WHERE id = %s", [victim.verb, forged, victim.pk]),
        ("UPDATE exchange_auditchainhead SET last_hash = %s WHERE id = %s", [forged, victim.chain]),
    )
    assert services.audit_verify() == [
        f"event #{victim.seq} of chain {victim.chain} was altered (its content does not match its hash)"
    ]


# --- Checkpoints -------------------------------------------------------------------------------------


def test_checkpoints_are_written_and_verified(trail, checkpoints, capsys):
    # when
    call_command("audit_checkpoint")
    # then
    assert f"Checkpoint written: {len(trail)} events on 1 chain(s)" in capsys.readouterr().out
    (line,) = checkpoints.read_text().splitlines()
    data = json.loads(line)
    assert data["chains"] == [[trail[-1].chain, trail[-1].seq, trail[-1].hash]]
    assert Checkpoint.parse(line) == Checkpoint(ends=((trail[-1].chain, trail[-1].seq, trail[-1].hash),), at=data["at"])
    # and the trail grows on past it, checkpointed again
    services.audit_record(actor=None, verb="test.later")
    services.audit_checkpoint()
    assert len(checkpoints.read_text().splitlines()) == 2
    call_command("verify_audit")
    assert "intact" in capsys.readouterr().out


def test_a_checkpoint_is_logged_for_a_log_sink(trail, caplog):
    with caplog.at_level("INFO", logger="exchange.audit.checkpoint"):
        checkpoint = services.audit_checkpoint()
    assert checkpoint is not None and checkpoint.line() in caplog.text


def test_an_empty_trail_is_not_checkpointed(db, checkpoints, capsys):
    call_command("audit_checkpoint")
    assert "nothing to checkpoint" in capsys.readouterr().out
    assert not checkpoints.exists()


def test_a_forged_checkpoint_line_is_reported(trail, checkpoints):
    services.audit_checkpoint()
    # given a line written by someone with access to the file but not the key
    body = {"seq": 9999, "hash": "0" * 64, "at": "2026-01-01T00:00:00+00:00"}
    mac = hmac.new(b"guessed", canonical_json(body), hashlib.sha256).hexdigest()
    with checkpoints.open("a") as f:
        f.write(json.dumps({**body, "mac": mac}) + "\n")
        f.write("not json at all\n")
    # then
    assert services.audit_verify() == [
        "checkpoint line 2 is forged or damaged (its MAC does not match the audit key)",
        "checkpoint line 3 is forged or damaged (its MAC does not match the audit key)",
    ]


def test_a_trail_cut_back_below_a_checkpoint_is_reported(trail, checkpoints):
    # given a checkpoint of the whole trail, then its tail deleted and the head moved back onto the rest
    services.audit_checkpoint()
    kept = trail[0]
    _tamper(
        ("DELETE FROM exchange_auditevent WHERE chain = %s AND seq > %s", [kept.chain, kept.seq]),
        (
            "UPDATE exchange_auditchainhead SET last_seq = %s, last_hash = %s WHERE id = %s",
            [kept.seq, kept.hash, kept.chain],
        ),
    )
    # then the chain alone looks whole, but not against the checkpoint
    problems = services.audit_verify()
    assert len(problems) == 1
    assert problems[0].startswith(f"chain {kept.chain} ends at event #{kept.seq} but the checkpoint of ")
    assert problems[0].endswith(f"saw it reach #{trail[-1].seq} (events removed and the head reset)")


def test_a_checkpointed_event_rewritten_is_reported(trail):
    checkpoint = services.audit_checkpoint()
    assert checkpoint is not None
    ((chain, seq, _hash),) = checkpoint.ends
    _tamper(("UPDATE exchange_auditevent SET hash = %s WHERE chain = %s AND seq = %s", ["f" * 64, chain, seq]))
    rewritten = (
        f"event #{seq} of chain {chain} is not the one the checkpoint of {checkpoint.at} saw (the chain was rewritten)"
    )
    assert rewritten in services.audit_verify()


def test_checkpoints_can_go_to_a_storage(trail, settings, tmp_path):
    # given an object store (here the file system storage) and no file
    settings.STORAGES = {
        **settings.STORAGES,
        "audit": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path / "s"}},
    }
    settings.AUDIT_CHECKPOINT_STORAGE, settings.AUDIT_CHECKPOINT_PATH = "audit", ""
    # when
    first = services.audit_checkpoint()
    services.audit_record(actor=None, verb="test.later")
    services.audit_checkpoint()
    # then one object per checkpoint, held against the trail
    assert len(list((tmp_path / "s" / "audit-checkpoints").iterdir())) == 2
    assert services.audit_verify() == []
    assert first is not None
    ((chain, seq, _hash),) = first.ends
    _tamper(("UPDATE exchange_auditevent SET hash = %s WHERE chain = %s AND seq = %s", ["e" * 64, chain, seq]))
    assert any("is not the one the checkpoint" in p for p in services.audit_verify())


def test_the_nightly_task_checkpoints_an_intact_trail_only(trail, checkpoints):
    from exchange.tasks import audit_checkpoint_task, audit_verify_task

    assert audit_verify_task.delay().get() == {"intact": True, "problems": []}
    assert len(checkpoints.read_text().splitlines()) == 1
    _tamper(("UPDATE exchange_auditevent SET verb = %s WHERE id = %s", ["x", trail[0].pk]))
    assert audit_verify_task.delay().get()["intact"] is False
    assert len(checkpoints.read_text().splitlines()) == 1
    with pytest.raises(CommandError, match="no checkpoint written"):
        call_command("audit_checkpoint")
    # the hourly one does not verify: earlier checkpoints still catch a cut-back trail
    assert audit_checkpoint_task.delay().get() == len(trail)


def test_production_needs_an_audit_key(settings):
    settings.DEBUG, settings.AUDIT_HMAC_KEY = False, ""
    assert [e.id for e in audit_hmac_key(None)] == ["exchange.E002"]
    assert "exchange.E002" in [e.id for e in run_checks(include_deployment_checks=True)]
    settings.AUDIT_HMAC_KEY = "k" * 32
    assert audit_hmac_key(None) == []


def test_without_a_key_nothing_is_recorded(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.AUDIT_HMAC_KEY = ""
    # audit_record takes no savepoint of its own: a failed append dooms the caller's whole transaction (here the
    # block's), so that no audited change commits without its row.
    with pytest.raises(ImproperlyConfigured, match="AUDIT_HMAC_KEY"), transaction.atomic():
        services.audit_record(actor=None, verb="test.nokey")
    assert not AuditEvent.objects.exists()


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite only")
def test_granting_the_app_role_does_nothing_on_sqlite(capsys):
    call_command("db_grant_app_role", "exchange_app")
    assert "Nothing to do on sqlite" in capsys.readouterr().out
