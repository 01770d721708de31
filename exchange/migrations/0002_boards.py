"""The exchange's two boards and the head of the audit chain: structure, not demo data."""

from django.db import migrations

BOARDS = [
    {
        "code": "domestic",
        "name_en": "Domestic board",
        "name_zh": "国内板",
        "fee_rate_bps": 50,
        "settlement_currencies": ["CNY"],
        "is_cross_border": False,
    },
    {
        "code": "international",
        "name_en": "International board",
        "name_zh": "国际板",
        "fee_rate_bps": 80,
        "settlement_currencies": ["CNY", "USD"],
        "is_cross_border": True,
    },
]


def create(apps, schema_editor):
    Board = apps.get_model("exchange", "Board")
    for fields in BOARDS:
        Board.objects.update_or_create(code=fields["code"], defaults=fields)
    apps.get_model("exchange", "AuditChainHead").objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("exchange", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
