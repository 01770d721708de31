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
    # Only the fields the model has at the state this runs in (0009 removed the fee rate; the test suite re-runs
    # this step with the current models after each flush).
    names = {field.name for field in Board._meta.get_fields()}
    for fields in BOARDS:
        Board.objects.update_or_create(code=fields["code"], defaults={k: v for k, v in fields.items() if k in names})
    apps.get_model("exchange", "AuditChainHead").objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("exchange", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
