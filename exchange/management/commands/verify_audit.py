"""Recompute the audit trail's keyed hash chain and hold it against the checkpoints; exit 1 on any problem."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from exchange.models import AuditEvent
from exchange.services import audit_verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail's keyed hash chain and its checkpoints. Exits non-zero when a row was altered, "
        "deleted or forged, or the trail ends before a checkpoint."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = audit_verify()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"The audit trail is broken: {len(problems)} problem(s).")
        self.stdout.write(self.style.SUCCESS(f"The audit trail is intact: {AuditEvent.objects.count()} events."))
