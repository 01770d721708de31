"""The audit trail's secrets and the checkpoints kept outside the database.

The trigger and the revoked privileges stop the application's role from rewriting the trail, but not the
role that owns the tables: it can switch the trigger off, rewrite rows, recompute their hashes and move the
head. Two things it cannot do make that visible:
- recompute a row's hash, which is an HMAC under AUDIT_HMAC_KEY, a secret kept in the environment;
- rewrite the checkpoints: the chain's head (seq, hash, time), written now and then to a file or object
  store and to a log, each line with its own HMAC. A trail cut back and re-sealed below a checkpoint
  (TRUNCATE and a reset head, or deleted tail rows) no longer reaches it.

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

# Objects of AUDIT_CHECKPOINT_STORAGE live under this prefix, one per checkpoint, named so that they sort by seq.
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
    """
    canonical = canonical_json(
        {
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


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str  # ISO 8601, UTC

    def mac(self) -> str:
        body = canonical_json({"seq": self.seq, "hash": self.hash, "at": self.at})
        return hmac.new(_checkpoint_key(), body, hashlib.sha256).hexdigest()

    def line(self) -> str:
        return canonical_json({"seq": self.seq, "hash": self.hash, "at": self.at, "mac": self.mac()}).decode()

    @classmethod
    def parse(cls, line: str) -> Checkpoint | None:
        """The checkpoint a line records, or None when the line is not one this key wrote."""
        try:
            data = json.loads(line)
            checkpoint = cls(seq=int(data["seq"]), hash=str(data["hash"]), at=str(data["at"]))
            mac = str(data["mac"])
        except (ValueError, TypeError, KeyError):
            return None
        return checkpoint if hmac.compare_digest(mac, checkpoint.mac()) else None


def checkpoint_store(checkpoint: Checkpoint) -> None:
    line = checkpoint.line()
    log.info("audit_checkpoint %s", line)
    if settings.AUDIT_CHECKPOINT_STORAGE:
        at = datetime.fromisoformat(checkpoint.at).strftime("%Y%m%dT%H%M%S%fZ")
        storage = storages[settings.AUDIT_CHECKPOINT_STORAGE]
        storage.save(f"{STORAGE_PREFIX}/{checkpoint.seq:015d}-{at}.json", ContentFile(line.encode("utf-8")))
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
