"""The first fee schedules: each board's published rate on the provider, for each currency it settles in, in force
from 2026-01-01 (before any order could be placed); no buyer's fee. Staff add later versions in the admin."""

import datetime

from django.db import migrations


def forward(apps, schema_editor):
    Board = apps.get_model("exchange", "Board")
    FeeSchedule = apps.get_model("settlements", "FeeSchedule")
    for board in Board.objects.all():
        for currency in board.settlement_currencies:
            FeeSchedule.objects.get_or_create(
                board=board,
                currency=currency,
                effective_from=datetime.date(2026, 1, 1),
                defaults={"provider_rate_bps": board.fee_rate_bps, "note": "Initial schedule: the board's rate."},
            )


class Migration(migrations.Migration):
    dependencies = [("settlements", "0002_ledger_guards"), ("exchange", "0002_boards")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
