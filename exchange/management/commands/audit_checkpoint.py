"""Write every audit chain's end (chain, seq, hash) and the time to the checkpoint sinks, outside the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from exchange.management.commands._audit import verify_or_fail
from exchange.services import audit_checkpoint


class Command(BaseCommand):
    help = (
        "Verify the audit trail, then record every chain's end in AUDIT_CHECKPOINT_PATH / AUDIT_CHECKPOINT_STORAGE and the "
        "exchange.audit.checkpoint log, where verify_audit will hold the trail against it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # Never anchor a trail that is already broken: that would vouch for whatever was done to it.
        verify_or_fail(self, consequence="; no checkpoint written")
        checkpoint = audit_checkpoint()
        if checkpoint is None:
            self.stdout.write("The audit trail is empty: nothing to checkpoint.")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Checkpoint written: {checkpoint.events} events on {len(checkpoint.ends)} chain(s) at {checkpoint.at}."
                )
            )
