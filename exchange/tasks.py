"""The core's background work."""

from __future__ import annotations

import logging

from celery import shared_task

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
