"""Recompute the audit trail's keyed hash chain and hold it against the checkpoints; exit 1 on any problem."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from exchange.management.commands._audit import verify_or_fail
from exchange.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Verify the audit trail's keyed hash chain and its checkpoints. Exits non-zero when a row was altered, "
        "deleted or forged, or the trail ends before a checkpoint."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        verify_or_fail(self)
        self.stdout.write(self.style.SUCCESS(f"The audit trail is intact: {AuditEvent.objects.count()} events."))
