"""What the audit commands share: verify the trail first, and stop on the first sign it is broken."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from exchange.services import audit_verify


def verify_or_fail(command: BaseCommand, *, consequence: str = "") -> None:
    """Write each problem to stderr and fail the command; `consequence` ends the message (e.g. what was not done)."""
    problems = audit_verify()
    if problems:
        for problem in problems:
            command.stderr.write(problem)
        raise CommandError(f"The audit trail is broken: {len(problems)} problem(s){consequence}.")
