"""Background work of the compliance app: tasks take ids and call services; all are idempotent."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from listings.models import Revision

from .calendar import SHANGHAI
from .services.listing import listing_assess
from .services.sweeps import compliance_daily


@shared_task(name="compliance.listing_assess")
def listing_assess_task(revision_id: int) -> int:
    """Assess a submitted revision for listing (repeatable: an unchanged decision is not stored twice)."""
    revision = Revision.objects.filter(pk=revision_id).first()
    if revision is None:
        return 0
    return len(listing_assess(revision=revision))


@shared_task(name="compliance.daily")
def compliance_daily_task() -> dict[str, int]:
    return compliance_daily(today=timezone.localdate(timezone=SHANGHAI))
