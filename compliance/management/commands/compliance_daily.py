"""`manage.py compliance_daily [--today YYYY-MM-DD]`: run the daily compliance sweep now (beat runs it at
01:15 Shanghai time): expire filings, send reminders, assess submitted revisions with nothing on file, and
re-assess listed products when the rules or a zone's list changed. Idempotent."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from compliance.calendar import SHANGHAI
from compliance.services import compliance_daily


class Command(BaseCommand):
    help = "Run the daily compliance sweep now."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--today", help="the day to run as (YYYY-MM-DD); default: today in Shanghai")

    def handle(self, *args: Any, today: str | None = None, **options: Any) -> None:
        try:
            day = date.fromisoformat(today) if today else timezone.localdate(timezone=SHANGHAI)
        except ValueError:
            raise CommandError("--today is a date as YYYY-MM-DD", returncode=2) from None
        result = compliance_daily(today=day)
        self.stdout.write(" ".join(f"{key}={value}" for key, value in result.items()))
