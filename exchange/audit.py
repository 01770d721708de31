"""The audit trail's secrets and the checkpoints kept outside the database.

The trigger and the revoked privileges stop the application's role from rewriting the trail, but not the
role that owns the tables: it can switch the trigger off, rewrite rows, recompute their hashes and move the
head. Two things it cannot do make that visible:
- recompute a row's hash, which is an HMAC under AUDIT_HMAC_KEY, a secret kept in the environment;
- rewrite the checkpoints: every chain's end (chain, seq, hash) and the time, written now and then to a file
  or object store and to a log, each line with its own HMAC. A chain cut back and re-sealed below a
  checkpoint (TRUNCATE and reset heads, or deleted tail rows) no longer reaches it.

Checkpoints are written with plain file I/O, appending one line per call: Django's storage API has no
append, and an append-only file (`chattr +a`) is the simplest sink that even its writer cannot rewrite. When
AUDIT_CHECKPOINT_STORAGE names a storage (an object store with object lock, say), each checkpoint is one
object there instead, since object stores cannot append either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import storages

log = logging.getLogger("exchange.audit.checkpoint")

# Objects of AUDIT_CHECKPOINT_STORAGE live under this prefix, one per checkpoint, named so that they sort by the
# number of events they saw (the sum of the chains' seqs), then by time.
STORAGE_PREFIX = "audit-checkpoints"


def audit_key() -> bytes:
    key = settings.AUDIT_HMAC_KEY
    if not key:
        raise ImproperlyConfigured("AUDIT_HMAC_KEY must be set when DJANGO_DEBUG is off.")
    return key.encode("utf-8")


def _checkpoint_key() -> bytes:
    # Its own key derived from the audit key, so that a checkpoint's MAC can never pass for a row's hash.
    return hmac.new(audit_key(), b"exchange.audit.checkpoint", hashlib.sha256).digest()


def canonical_json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def audit_hash(
    *,
    key: bytes | None,
    chain: int = 1,
    seq: int,
    prev_hash: str,
    created_at: datetime,
    actor_id: int | None,
    actor_repr: str,
    verb: str,
    object_type: str,
    object_id: str,
    object_repr: str,
    payload: Any,
    request_id: str,
) -> str:
    """HMAC-SHA256 under `key` of a canonical JSON rendering of the row and its predecessor's hash.

    key=None gives the plain SHA-256 that rows carried before migration 0005, kept to verify those rows.
    Rows are never re-hashed with the key instead: on PostgreSQL the trigger refuses every UPDATE, rightly.

    The chain is part of what is hashed, so a row moved to another chain no longer verifies; chain 1 leaves it
    out, because the rows from before there were chains are chain 1 and must keep their hashes (the same
    refused UPDATEs). Leaving it out for exactly one value keeps the rendering one-to-one.
    """
    fields: dict[str, Any] = {} if chain == 1 else {"chain": chain}
    canonical = canonical_json(
        {
            **fields,
            "seq": seq,
            "prev_hash": prev_hash,
            "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor_id": actor_id,
            "actor_repr": actor_repr,
            "verb": verb,
            "object_type": object_type,
            "object_id": object_id,
            "object_repr": object_repr,
            "payload": payload,
            "request_id": request_id,
        }
    )
    if key is None:
        return hashlib.sha256(canonical).hexdigest()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def create_missing_heads(*, head_model: Any, event_model: Any, count: int) -> int:
    """Create the missing heads of chains 1..count, empty; how many. Run at migrate time, never per append.

    The models are passed in so that migrations and post_migrate can hand over their historical ones. A chain
    that has events but no head gets none: its head was deleted, which verify_audit reports, and a new empty
    head would both hide that and collide with the chain's seqs. Appends pass such a chain by.
    """
    wanted = set(range(1, count + 1)) - set(head_model.objects.values_list("id", flat=True))
    wanted -= set(event_model.objects.filter(chain__in=wanted).values_list("chain", flat=True).distinct())
    head_model.objects.bulk_create([head_model(id=chain) for chain in sorted(wanted)], ignore_conflicts=True)
    return len(wanted)


@dataclass(frozen=True)
class Checkpoint:
    """Every chain's end at one moment: (chain, seq, hash) for each chain that has events, by chain."""

    ends: tuple[tuple[int, int, str], ...]
    at: str  # ISO 8601, UTC

    @property
    def events(self) -> int:
        """How many events the trail held (each chain counts from 1)."""
        return sum(seq for _chain, seq, _hash in self.ends)

    def mac(self) -> str:
        return _mac({"chains": [list(end) for end in self.ends], "at": self.at})

    def line(self) -> str:
        return canonical_json({"chains": [list(end) for end in self.ends], "at": self.at, "mac": self.mac()}).decode()

    @classmethod
    def parse(cls, line: str) -> Checkpoint | None:
        """The checkpoint a line records, or None when the line is not one this key wrote.

        Lines from before there were chains ({"seq", "hash", "at", "mac"}) record chain 1; their MAC covers that
        older body, which no line of the newer form can pass for (the two bodies have different keys).
        """
        try:
            data = json.loads(line)
            at, mac = str(data["at"]), str(data["mac"])
            if "chains" in data:
                ends = tuple((int(chain), int(seq), str(hash_)) for chain, seq, hash_ in data["chains"])
                checkpoint = cls(ends=ends, at=at)
                expected = checkpoint.mac()
            else:
                seq, hash_ = int(data["seq"]), str(data["hash"])
                checkpoint = cls(ends=((1, seq, hash_),), at=at)
                expected = _mac({"seq": seq, "hash": hash_, "at": at})
        except (ValueError, TypeError, KeyError):
            return None
        return checkpoint if hmac.compare_digest(mac, expected) else None


def _mac(body: dict[str, Any]) -> str:
    return hmac.new(_checkpoint_key(), canonical_json(body), hashlib.sha256).hexdigest()


def checkpoint_store(checkpoint: Checkpoint) -> None:
    line = checkpoint.line()
    log.info("audit_checkpoint %s", line)
    if settings.AUDIT_CHECKPOINT_STORAGE:
        at = datetime.fromisoformat(checkpoint.at).strftime("%Y%m%dT%H%M%S%fZ")
        storage = storages[settings.AUDIT_CHECKPOINT_STORAGE]
        name = f"{STORAGE_PREFIX}/{checkpoint.events:015d}-{at}.json"
        storage.save(name, ContentFile(line.encode("utf-8")))
    if settings.AUDIT_CHECKPOINT_PATH:
        path = Path(settings.AUDIT_CHECKPOINT_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of one line to a file opened O_APPEND: concurrent writers' lines never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def checkpoint_lines() -> list[str]:
    """Every checkpoint line of the configured sinks, oldest first within each (unchecked)."""
    lines: list[str] = []
    if settings.AUDIT_CHECKPOINT_STORAGE:
        storage = storages[settings.AUDIT_CHECKPOINT_STORAGE]
        try:
            names = storage.listdir(STORAGE_PREFIX)[1]
        except FileNotFoundError:  # nothing written yet (an object store answers an empty list instead)
            names = []
        for name in sorted(names):
            with storage.open(f"{STORAGE_PREFIX}/{name}") as f:
                lines.append(f.read().decode("utf-8").strip())
    if settings.AUDIT_CHECKPOINT_PATH:
        path = Path(settings.AUDIT_CHECKPOINT_PATH)
        if path.exists():
            lines.extend(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return lines
