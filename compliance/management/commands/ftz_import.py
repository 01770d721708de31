"""`manage.py ftz_import ZONE VERSION FILE.csv`: load a free trade zone list's items from CSV, all or nothing.

The list (zone and version) must exist (staff create it in the admin, with its dates and covered categories);
the CSV's columns are those of compliance.services.ftz.CSV_COLUMNS. Exits 2 with every bad line named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compliance.models import FtzList
from compliance.services import ftz_items_import
from exchange.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Load a free trade zone negative list's items from a CSV file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("zone")
        parser.add_argument("version")
        parser.add_argument("path", type=Path)
        parser.add_argument("--replace", action="store_true", help="remove the items the file does not name")

    def handle(self, *args: Any, zone: str, version: str, path: Path, replace: bool = False, **options: Any) -> None:
        ftz_list = FtzList.objects.filter(zone=zone, version=version).first()
        if ftz_list is None:
            raise CommandError(f"No list {zone} {version}: create it in the admin first.", returncode=2)
        try:
            result = ftz_items_import(ftz_list=ftz_list, content=path.read_bytes(), actor=None, replace=replace)
        except (OSError, ApplicationError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(
            f"{ftz_list}: {result.created} items added, {result.updated} updated, {result.removed} removed."
        )
