"""`manage.py calendar_import`: load the State Council's holiday notices into the PRC working-day calendar.

The notices come from the `chinese-calendar` package, which follows each year's notice (usually published in
November for the next year): upgrade it, then run `calendar_import --year 2027`. Without an upgrade, staff
enter the new year's days in the admin by hand; either way no code changes.

Rows already in the calendar win: a day that staff corrected is reported, not overwritten, unless
`--overwrite` is given. Nothing is ever deleted here (the admin does that, audited).

`--dump PATH` writes the days as JSON instead of touching the database: compliance/data/prc_calendar.json,
which the seed migration reads, was made with `calendar_import --dump compliance/data/prc_calendar.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chinese_calendar
from chinese_calendar import constants
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from compliance.models import SATURDAY, CalendarDay
from exchange.services import audit_record

FIRST_YEAR = 2024  # the exchange opened under the 2024 Provisions; earlier years decide no deadline here

NAMES_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "Mid-autumn Festival": "中秋节",
    "National Day": "国庆节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}


def package_days(years: list[int] | None = None) -> list[dict[str, str]]:
    """The calendar's exceptions for `years` (default: every year the package knows from FIRST_YEAR on)."""
    known = {day.year for day in constants.holidays} | {day.year for day in constants.workdays}
    wanted = sorted(known & set(years)) if years else sorted(y for y in known if y >= FIRST_YEAR)
    if years and set(years) - known:
        missing = ", ".join(str(y) for y in sorted(set(years) - known))
        raise CommandError(f"chinese-calendar {chinese_calendar.__version__} has no notice for {missing}: upgrade it")
    version = chinese_calendar.__version__
    days = []
    # The package lists every day of each holiday period, weekends included; only weekday holidays and
    # weekend make-up days change the working week, so only those are kept.
    for kind, table, keep in (
        (CalendarDay.Kind.HOLIDAY, constants.holidays, lambda day: day.weekday() < SATURDAY),
        (CalendarDay.Kind.WORKDAY, constants.workdays, lambda day: day.weekday() >= SATURDAY),
    ):
        for day, holiday in table.items():
            if day.year in wanted and keep(day):
                name_en = getattr(holiday, "value", str(holiday))
                days.append(
                    {
                        "date": day.isoformat(),
                        "kind": str(kind),
                        "name_en": name_en,
                        "name_zh": NAMES_ZH.get(name_en, name_en),
                        "source": f"State Council notice on the {day.year} holidays (chinese-calendar {version})",
                    }
                )
    return sorted(days, key=lambda row: row["date"])


class Command(BaseCommand):
    help = "Load the State Council's holiday notices (from chinese-calendar) into the PRC working-day calendar."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--year", type=int, action="append", dest="years", help="a year to load (repeatable; default: all)"
        )
        parser.add_argument("--overwrite", action="store_true", help="replace rows that differ from the notice")
        parser.add_argument("--dump", type=Path, help="write the days as JSON to this file instead")

    def handle(self, *args: Any, years: list[int] | None, overwrite: bool, dump: Path | None, **options: Any) -> None:
        days = package_days(years)
        if dump is not None:
            dump.write_text(json.dumps(days, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            self.stdout.write(f"{len(days)} days written to {dump}")
            return
        added, replaced, kept = [], [], []
        with transaction.atomic():
            existing = {
                row.date.isoformat(): row for row in CalendarDay.objects.filter(date__in=[d["date"] for d in days])
            }
            for day in days:
                row = existing.get(day["date"])
                if row is None:
                    CalendarDay.objects.create(**day)
                    added.append(day["date"])
                elif row.kind != day["kind"]:
                    if overwrite:
                        for field, value in day.items():
                            setattr(row, field, value)
                        row.updated_by = None
                        row.save()
                        replaced.append(day["date"])
                    else:
                        kept.append(day["date"])
            if added or replaced:
                audit_record(
                    actor=None,
                    verb="calendar.import",
                    payload={"added": added, "replaced": replaced, "kept": kept, "years": years or "all"},
                )
        self.stdout.write(f"{len(added)} days added, {len(replaced)} replaced.")
        for date in kept:
            self.stdout.write(f"{date}: the calendar differs from the notice; kept (use --overwrite to replace)")
