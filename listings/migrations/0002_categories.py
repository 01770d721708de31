"""The category taxonomy the exchange starts with; staff manage it in the admin from then on."""

from django.db import migrations

CATEGORIES = [
    ("business-intelligence", "Business intelligence", "商业情报"),
    ("trade", "Import/export trade", "进出口贸易"),
    ("finance-credit", "Finance and credit", "金融与征信"),
    ("supply-chain", "Supply chain and logistics", "供应链与物流"),
    ("consumer", "Consumer", "消费"),
    ("industry", "Industry and manufacturing", "工业与制造"),
    ("geospatial", "Geospatial", "地理空间"),
    ("other", "Other", "其他"),
]


def create(apps, schema_editor):
    Category = apps.get_model("listings", "Category")
    for position, (code, name_en, name_zh) in enumerate(CATEGORIES, start=1):
        Category.objects.update_or_create(
            code=code, defaults={"name_en": name_en, "name_zh": name_zh, "position": position * 10}
        )


class Migration(migrations.Migration):
    dependencies = [("listings", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
