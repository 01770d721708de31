"""The core's background work."""

from __future__ import annotations

import logging

from celery import shared_task

from .idempotency import idempotency_key_prune
from .outbox import outbox_prune, outbox_relay
from .services import audit_checkpoint, audit_verify

log = logging.getLogger(__name__)


@shared_task(name="exchange.audit_verify")
def audit_verify_task() -> dict[str, object]:
    """Re-verify the audit trail (nightly), shout if it is broken, else checkpoint its end. Safe to repeat."""
    problems = audit_verify()
    if problems:
        log.error("audit_chain_broken problems=%d first=%s", len(problems), problems[0])
    else:
        # Anchor only a verified end: the earlier checkpoints already catch a trail cut back before now.
        audit_checkpoint()
    return {"intact": not problems, "problems": problems[:20]}


@shared_task(name="exchange.audit_checkpoint")
def audit_checkpoint_task() -> int | None:
    """Write every chain's end outside the database (hourly), so a cut-back trail has less to hide in; the
    number of events it saw."""
    checkpoint = audit_checkpoint()
    return checkpoint.events if checkpoint else None


@shared_task(name="exchange.outbox_relay")
def outbox_relay_task() -> dict[str, int]:
    """Hand pending outbox events to their subscribers (every minute, and after each commit that published one).
    Safe to run twice and in parallel: each event goes to each subscriber once (exchange.outbox)."""
    counts = outbox_relay()
    if counts["failed"]:
        log.warning("outbox_relay %s", " ".join(f"{name}={n}" for name, n in counts.items()))
    return counts


@shared_task(name="exchange.outbox_prune")
def outbox_prune_task() -> int:
    """Delete the outbox events published more than OUTBOX_RETENTION_DAYS ago (daily). Safe to repeat."""
    return outbox_prune()


@shared_task(name="exchange.idempotency_prune")
def idempotency_prune_task() -> int:
    """Delete the idempotency keys whose retention has passed (hourly). Safe to repeat."""
    return idempotency_key_prune()
