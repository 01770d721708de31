"""Seed the PRC working-day calendar from compliance/data/prc_calendar.json (the State Council's notices).

The file was generated with `manage.py calendar_import --dump`; reading it here keeps migrations free of
the chinese-calendar package, whose data changes with every release. Rows already present are left alone.
"""

import json
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data" / "prc_calendar.json"


def _days():
    return json.loads(DATA.read_text(encoding="utf-8"))


def seed(apps, schema_editor):
    CalendarDay = apps.get_model("compliance", "CalendarDay")
    CalendarDay.objects.bulk_create([CalendarDay(**day) for day in _days()], ignore_conflicts=True)


def unseed(apps, schema_editor):
    CalendarDay = apps.get_model("compliance", "CalendarDay")
    for day in _days():
        CalendarDay.objects.filter(date=day["date"], kind=day["kind"], source=day["source"]).delete()


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
