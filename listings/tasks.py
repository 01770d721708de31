"""Background work of the catalogue."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from .services import (
    DATASET_VALIDATE_TASK,
    dataset_requeue,
    dataset_validate,
    datasets_stale,
    notice_conclude,
    notices_due,
)

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


@shared_task(name=DATASET_VALIDATE_TASK, bind=True, max_retries=0)
def dataset_validate_task(self: Any, dataset_id: int) -> str | None:
    """Check an uploaded dataset (listings.services.dataset_validate). Safe to run twice: a dataset already
    checked, or being checked by another worker, is left alone."""
    dataset = dataset_validate(dataset_id=dataset_id)
    if dataset is not None:
        log.info("dataset_validate id=%d status=%s rows=%s", dataset.pk, dataset.status, dataset.row_count)
        return dataset.status
    return None


@shared_task(name="listings.sweep_stale_datasets")
def sweep_stale_datasets_task() -> dict[str, int]:
    """Queue again the check of every dataset left waiting (its task lost) or stalled (its worker died):
    listings.services.datasets_stale. Idempotent: a check claims its row by compare-and-swap, so a row queued
    twice is checked once, and one checked meanwhile is left alone."""
    stale = datasets_stale()
    for dataset_id in stale:
        dataset_requeue(dataset_id)
    if stale:
        log.warning("sweep_stale_datasets requeued=%d ids=%s", len(stale), stale[:20])
    return {"requeued": len(stale)}
