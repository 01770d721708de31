"""The core's background work."""

from __future__ import annotations

import logging

from celery import shared_task

from .services import audit_verify

log = logging.getLogger(__name__)


@shared_task(name="exchange.audit_verify")
def audit_verify_task() -> dict[str, object]:
    """Re-verify the audit trail's hash chain (nightly) and shout if it is broken. Read-only: safe to repeat."""
    problems = audit_verify()
    if problems:
        log.error("audit_chain_broken problems=%d first=%s", len(problems), problems[0])
    return {"intact": not problems, "problems": problems[:20]}
