"""Background work of the catalogue."""

from __future__ import annotations

import logging

from celery import shared_task

from .services import notice_conclude, notices_due

log = logging.getLogger(__name__)


@shared_task(name="listings.conclude_notices")
def conclude_notices_task() -> dict[str, int]:
    """List every revision whose public notice has ended with no open objection. Idempotent: each revision
    is concluded in its own transaction under a row lock, and one already concluded is left alone."""
    listed = 0
    due = notices_due()
    for revision_id in due:
        if notice_conclude(revision_id=revision_id) is not None:
            listed += 1
    if due:
        log.info("conclude_notices due=%d listed=%d", len(due), listed)
    return {"due": len(due), "listed": listed}
