from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def dismiss_duplicate_open_objections(apps, schema_editor):
    # Before the constraint, a firm could hold several open objections to one revision: keep its first one
    # open for the reviewer and close the repeats, so that the constraint can be added.
    Objection = apps.get_model("listings", "Objection")
    seen = set()
    for objection in Objection.objects.filter(status="open").order_by("created_at", "pk"):
        key = (objection.firm_id, objection.revision_id)
        if key in seen:
            Objection.objects.filter(pk=objection.pk).update(
                status="dismissed",
                resolution="A repeat of the firm's earlier open objection to this revision.",
                resolved_at=timezone.now(),
            )
        seen.add(key)


class Migration(migrations.Migration):

    dependencies = [
        ('exchange', '0004_memberfirm_is_judicial_authority'),
        ('listings', '0004_revision_export_destinations'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(dismiss_duplicate_open_objections, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='objection',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('firm', 'revision'), name='objection_one_open_per_firm'),
        ),
    ]
