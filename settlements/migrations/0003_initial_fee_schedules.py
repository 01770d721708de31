"""The first fee schedules: each board's published rate on the provider, for each currency it settles in, in force
from 2026-01-01 (before any order could be placed); no buyer's fee. Staff add later versions in the admin."""

import datetime
from importlib import import_module

from django.db import migrations


def _rate(board):
    # The board's rate where the model still has it (migrating); the published first rates where it does not (the
    # test suite re-runs this step with the current models, from which exchange 0009 removed the rate).
    if hasattr(board, "fee_rate_bps"):
        return board.fee_rate_bps
    return {b["code"]: b["fee_rate_bps"] for b in import_module("exchange.migrations.0002_boards").BOARDS}[board.code]


def forward(apps, schema_editor):
    Board = apps.get_model("exchange", "Board")
    FeeSchedule = apps.get_model("settlements", "FeeSchedule")
    for board in Board.objects.all():
        for currency in board.settlement_currencies:
            FeeSchedule.objects.get_or_create(
                board=board,
                currency=currency,
                effective_from=datetime.date(2026, 1, 1),
                defaults={"provider_rate_bps": _rate(board), "note": "Initial schedule: the board's rate."},
            )


class Migration(migrations.Migration):
    dependencies = [("settlements", "0002_ledger_guards"), ("exchange", "0002_boards")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
