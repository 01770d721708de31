"""`manage.py parties_import FILE.csv`: load restricted parties from CSV (see compliance.services.parties)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compliance.services import parties_import
from exchange.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Load restricted parties from a CSV file (name, country, source_list, aliases, identifiers, listed_on)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        try:
            result = parties_import(content=path.read_bytes(), actor=None)
        except (OSError, ApplicationError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(f"Restricted parties: {result.created} added, {result.updated} updated.")
