"""A board's single fee rate goes: the fees every order is charged are settlements' fee schedules (per board,
currency and day, with a provider's and a buyer's part), whose first versions were made from this rate
(settlements 0003). Kept, it was shown on the landing page and the boards API while orders were charged otherwise.

Reversible: back past this migration the column returns, filled with each board's first provider rate on record."""

from django.db import migrations, models


def restore(apps, schema_editor):
    Board = apps.get_model("exchange", "Board")
    FeeSchedule = apps.get_model("settlements", "FeeSchedule")
    for board in Board.objects.all():
        first = FeeSchedule.objects.filter(board=board).order_by("effective_from", "id").first()
        board.fee_rate_bps = first.provider_rate_bps if first else 0
        board.save(update_fields=["fee_rate_bps"])


class Migration(migrations.Migration):
    dependencies = [
        ("exchange", "0008_audit_chains"),
        # The first fee schedules are made from the rate this removes.
        ("settlements", "0003_initial_fee_schedules"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="board", name="board_fee_rate_bps_lte_10000"),
        # A default, so that going back can add the column again before `restore` fills it.
        migrations.AlterField(
            model_name="board",
            name="fee_rate_bps",
            field=models.PositiveIntegerField(default=0, verbose_name="fee rate (basis points)"),
        ),
        migrations.RunPython(migrations.RunPython.noop, restore),
        migrations.RemoveField(model_name="board", name="fee_rate_bps"),
    ]
