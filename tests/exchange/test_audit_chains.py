"""The trail as several hash chains: each verifies on its own, and a row deleted, cut off, moved or swapped
between chains is reported, as is a chain cut back below a checkpoint (older checkpoint lines included).

Rows are put on a chosen chain through the thread's affinity (exchange.services.audit_affinity), which is the
chain an append tries first; in a single-threaded test nothing else holds a head, so that is the chain it gets.
"""

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection

from exchange import services
from exchange.audit import audit_hash, audit_key, canonical_json
from exchange.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db

ALTERED = "was altered (its content does not match its hash)"


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


@pytest.fixture
def chains(ops, monkeypatch) -> dict[int, list[AuditEvent]]:
    """Chains 1, 2 and 3 with three steps each (chain 1 also has the staff account's creation)."""
    for chain in (1, 2, 3):
        monkeypatch.setattr(services.audit_affinity, "chain", chain)
        for step in range(3):
            services.audit_record(actor=ops, verb="test.step", payload={"chain": chain, "step": step})
    return {chain: list(AuditEvent.objects.filter(chain=chain).order_by("seq")) for chain in (1, 2, 3)}


def test_each_chain_counts_and_links_on_its_own(chains):
    for chain, events in chains.items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.prev_hash for e in events] == [""] + [e.hash for e in events[:-1]]
        head = AuditChainHead.objects.get(id=chain)
        assert (head.last_seq, head.last_hash) == (events[-1].seq, events[-1].hash)
    assert services.audit_verify() == []


def test_the_hash_covers_the_chain_except_chain_ones(chains):
    # chain 1's rows hash as rows did before there were chains; the others' hashes include their chain
    def hashed_as(event: AuditEvent, chain: int) -> str:
        names = ["seq", "prev_hash", "created_at", "actor_id", "actor_repr", "verb", "object_type", "object_id"]
        names += ["object_repr", "payload", "request_id"]
        return audit_hash(key=audit_key(), chain=chain, **{name: getattr(event, name) for name in names})

    first, second = chains[1][-1], chains[2][-1]
    assert first.hash == hashed_as(first, 1) != hashed_as(first, 2)
    assert second.hash == hashed_as(second, 2) != hashed_as(second, 1)


def test_the_newest_first_order_runs_across_the_chains(chains):
    # the admin's and every display's order: created_at, then the id; not seq, which each chain counts alone
    newest = list(AuditEvent.objects.filter(verb="test.step"))[:4]
    assert [(e.chain, e.payload["step"]) for e in newest] == [(3, 2), (3, 1), (3, 0), (2, 2)]


def test_a_row_deleted_in_the_middle_of_one_chain_is_reported(chains):
    victim = chains[2][1]
    _tamper(("DELETE FROM exchange_auditevent WHERE id = %s", [victim.pk]))
    assert services.audit_verify() == [
        "event #2 of chain 2 is missing (next found is #3)",
        "event #3 of chain 2 does not follow its predecessor (chain broken)",
    ]


def test_a_deleted_tail_of_one_chain_is_reported_against_its_head(chains):
    _tamper(("DELETE FROM exchange_auditevent WHERE id = %s", [chains[3][-1].pk]))
    assert services.audit_verify() == ["chain 3 should end at event #3 but ends at #2 (events deleted or altered)"]


def test_a_deleted_tail_with_its_head_moved_back_is_reported_against_the_checkpoints(chains):
    # given a checkpoint of every chain's end, then the owner deletes chain 2's tail and moves its head back
    checkpoint = services.audit_checkpoint()
    assert checkpoint is not None
    assert [(chain, seq) for chain, seq, _hash in checkpoint.ends] == [(1, 4), (2, 3), (3, 3)]
    kept = chains[2][0]
    _tamper(
        ("DELETE FROM exchange_auditevent WHERE chain = 2 AND seq > %s", [kept.seq]),
        ("UPDATE exchange_auditchainhead SET last_seq = %s, last_hash = %s WHERE id = 2", [kept.seq, kept.hash]),
    )
    # then chain 2 alone looks whole, but falls short of the checkpoint; the other chains are as they were
    assert services.audit_verify() == [
        f"chain 2 ends at event #1 but the checkpoint of {checkpoint.at} saw it reach #3 "
        "(events removed and the head reset)"
    ]


def test_a_whole_chain_deleted_with_its_head_reset_is_reported_against_the_checkpoints(chains):
    checkpoint = services.audit_checkpoint()
    assert checkpoint is not None
    _tamper(
        ("DELETE FROM exchange_auditevent WHERE chain = 3", []),
        ("UPDATE exchange_auditchainhead SET last_seq = 0, last_hash = '' WHERE id = 3", []),
    )
    assert services.audit_verify() == [
        f"chain 3 ends at event #0 but the checkpoint of {checkpoint.at} saw it reach #3 "
        "(events removed and the head reset)"
    ]


@pytest.mark.parametrize("source", [1, 3])
def test_a_row_moved_to_another_chain_is_reported(chains, source):
    # given the first row of a chain moved to the empty chain 4, where its seq and prev_hash fit exactly, and
    # chain 4's head moved onto it: only the chain, which its hash covers, gives it away
    victim = chains[source][0]
    _tamper(
        ("UPDATE exchange_auditevent SET chain = 4 WHERE id = %s", [victim.pk]),
        ("UPDATE exchange_auditchainhead SET last_seq = 1, last_hash = %s WHERE id = 4", [victim.hash]),
    )
    assert services.audit_verify() == [
        f"event #1 of chain {source} is missing (next found is #2)",
        f"event #2 of chain {source} does not follow its predecessor (chain broken)",
        f"event #1 of chain 4 {ALTERED}",
    ]


def test_two_chains_swapped_whole_are_reported(chains):
    # given chains 2 and 3 relabelled as each other (by way of 102 and 103), heads too: each is then a well-linked
    # chain with a head that matches it
    _tamper(
        ("UPDATE exchange_auditevent SET chain = 100 + chain WHERE chain IN (2, 3)", []),
        ("UPDATE exchange_auditevent SET chain = 105 - chain WHERE chain IN (102, 103)", []),
        ("UPDATE exchange_auditchainhead SET id = 100 + id WHERE id IN (2, 3)", []),
        ("UPDATE exchange_auditchainhead SET id = 105 - id WHERE id IN (102, 103)", []),
    )
    # then every row of both is reported, as the hash covers the chain
    assert services.audit_verify() == [f"event #{n} of chain {c} {ALTERED}" for c in (2, 3) for n in (1, 2, 3)]


def test_rows_reordered_within_a_chain_are_reported(chains):
    second, third = chains[2][1], chains[2][2]
    _tamper(
        ("UPDATE exchange_auditevent SET seq = 99 WHERE id = %s", [second.pk]),
        ("UPDATE exchange_auditevent SET seq = 2 WHERE id = %s", [third.pk]),
        ("UPDATE exchange_auditevent SET seq = 3 WHERE id = %s", [second.pk]),
    )
    assert services.audit_verify() == [
        "event #2 of chain 2 does not follow its predecessor (chain broken)",
        f"event #2 of chain 2 {ALTERED}",
        "event #3 of chain 2 does not follow its predecessor (chain broken)",
        f"event #3 of chain 2 {ALTERED}",
        "chain 2 ends at event #3, but not at the one its head holds (events replaced or reordered)",
    ]


def test_a_row_inserted_into_a_chain_is_reported(chains):
    # given a row appended to chain 2 by someone without the key (hashed under another), its head moved onto it
    last = chains[2][-1]
    names = ["created_at", "actor_repr", "verb", "object_type", "object_id", "object_repr", "request_id"]
    fields = {name: getattr(last, name) for name in names}
    forged = audit_hash(
        key=b"not the exchange's", chain=2, seq=4, prev_hash=last.hash, actor_id=None, payload={}, **fields
    )
    _tamper(
        (
            "INSERT INTO exchange_auditevent (chain, seq, prev_hash, hash, created_at, actor_repr, verb, "
            "object_type, object_id, object_repr, payload, request_id) "
            "VALUES (2, 4, %s, %s, %s, %s, %s, %s, %s, %s, '{}', %s)",
            [last.hash, forged, *fields.values()],
        ),
        ("UPDATE exchange_auditchainhead SET last_seq = 4, last_hash = %s WHERE id = 2", [forged]),
    )
    assert services.audit_verify() == [f"event #4 of chain 2 {ALTERED}"]


def test_a_checkpoint_line_from_before_the_chains_means_chain_one(chains, settings):
    # given a line of the older form ({seq, hash, at, mac}) for chain 1's end, MAC'd as that form was
    end = chains[1][-1]
    body = {"seq": end.seq, "hash": end.hash, "at": "2026-01-01T00:00:00+00:00"}
    key = hmac.new(audit_key(), b"exchange.audit.checkpoint", hashlib.sha256).digest()
    mac = hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()
    Path(settings.AUDIT_CHECKPOINT_PATH).write_text(json.dumps({**body, "mac": mac}) + "\n")
    assert services.audit_verify() == []
    # when chain 1 is cut back below it
    kept = chains[1][0]
    _tamper(
        ("DELETE FROM exchange_auditevent WHERE chain = 1 AND seq > %s", [kept.seq]),
        ("UPDATE exchange_auditchainhead SET last_seq = %s, last_hash = %s WHERE id = 1", [kept.seq, kept.hash]),
    )
    # then
    assert services.audit_verify() == [
        f"chain 1 ends at event #1 but the checkpoint of {body['at']} saw it reach #{end.seq} "
        "(events removed and the head reset)"
    ]


# --- The heads --------------------------------------------------------------------------------------


def test_migrate_made_a_head_for_every_chain(settings):
    assert list(AuditChainHead.objects.values_list("id", "last_seq", "last_hash")) == [
        (chain, 0, "") for chain in range(1, settings.AUDIT_CHAINS + 1)
    ]


def test_raising_the_number_of_chains_adds_heads_at_the_next_migrate(settings, monkeypatch):
    # given more chains wanted than migrate made
    settings.AUDIT_CHAINS += 2
    # when migrate ends (its post_migrate signal)
    emit_post_migrate_signal(0, False, "default")
    # then the new heads exist, and appends reach them
    assert AuditChainHead.objects.count() == settings.AUDIT_CHAINS
    monkeypatch.setattr(services.audit_affinity, "chain", settings.AUDIT_CHAINS)
    assert services.audit_record(actor=None, verb="test.new_chain").chain == settings.AUDIT_CHAINS
    assert services.audit_verify() == []


def test_a_chain_whose_head_was_deleted_gets_no_new_one_and_no_appends(chains, monkeypatch):
    # given chain 2's head deleted behind the ORM's back
    _tamper(("DELETE FROM exchange_auditchainhead WHERE id = 2", []))
    # when migrate runs again, and an append would start at chain 2
    emit_post_migrate_signal(0, False, "default")
    monkeypatch.setattr(services.audit_affinity, "chain", 2)
    event = services.audit_record(actor=None, verb="test.after")
    # then the chain stays headless, reported, and appends went past it
    assert not AuditChainHead.objects.filter(id=2).exists()
    assert event.chain == 3
    assert services.audit_verify() == ["the head row of chain 2 is missing (the chain's end cannot be checked)"]


def test_without_heads_nothing_is_recorded(db):
    _tamper(("DELETE FROM exchange_auditchainhead", []))
    with pytest.raises(ImproperlyConfigured, match="no chain heads"):
        services.audit_record(actor=None, verb="test.headless")
