"""The audit trail becomes settings.AUDIT_CHAINS hash chains, each with its own head, so appends stop queueing.

Existing rows are chain 1, as they are: the new column's default gives them chain 1 without an UPDATE (which the
append-only trigger would refuse, rightly), and their hashes stay valid because a chain-1 row's hash leaves the
chain out (exchange.audit.audit_hash). Their seqs were already 1, 2, 3, ... without gaps, which is now chain 1's
sequence, and head 1 already points at the last of them. An unkeyed prefix sealed by migration 0005 stays
what it was: the start of chain 1, vouched for by the keyed seal after it. Nothing is re-hashed or re-sealed.

Heads 1..AUDIT_CHAINS that are missing are created empty here (and by `migrate` after that, exchange.signals,
so that raising the setting adds chains), never in the request path. A chain that already has events but no
head keeps having none: verify_audit reports it. Going back to 0005 works only while every event is on
chain 1 (it drops the other, empty, heads); after that the previous release cannot verify the trail.

On PostgreSQL the head's trigger of migration 0005 now also requires the event it moves onto to be of its own
chain; TRUNCATE and UPDATE/DELETE of events stay refused as before (their triggers do not look at columns).
"""

from django.conf import settings
from django.db import migrations, models

from exchange.audit import create_missing_heads

HEAD_FORWARD = """
CREATE OR REPLACE FUNCTION exchange_audit_head_forward() RETURNS trigger AS $$
BEGIN
    IF NEW.id <> OLD.id
        OR NEW.last_seq < OLD.last_seq
        OR (NEW.last_seq = OLD.last_seq AND NEW.last_hash <> OLD.last_hash)
        OR NOT EXISTS (
            SELECT 1 FROM exchange_auditevent
            WHERE chain = NEW.id AND seq = NEW.last_seq AND hash = NEW.last_hash
        )
    THEN
        RAISE EXCEPTION 'the audit chain head only moves forward to an existing event of its chain'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

# Migration 0005's function, for going back.
HEAD_FORWARD_SINGLE_CHAIN = """
CREATE OR REPLACE FUNCTION exchange_audit_head_forward() RETURNS trigger AS $$
BEGIN
    IF NEW.id <> OLD.id
        OR NEW.last_seq < OLD.last_seq
        OR (NEW.last_seq = OLD.last_seq AND NEW.last_hash <> OLD.last_hash)
        OR NOT EXISTS (
            SELECT 1 FROM exchange_auditevent WHERE seq = NEW.last_seq AND hash = NEW.last_hash
        )
    THEN
        RAISE EXCEPTION 'the audit chain head only moves forward to an existing event'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def create_heads(apps, schema_editor):
    create_missing_heads(
        head_model=apps.get_model("exchange", "AuditChainHead"),
        event_model=apps.get_model("exchange", "AuditEvent"),
        count=settings.AUDIT_CHAINS,
    )


def drop_extra_heads(apps, schema_editor):
    # Back to one chain: possible only while no event is on another chain (their seqs would clash in one chain).
    AuditEvent = apps.get_model("exchange", "AuditEvent")
    AuditChainHead = apps.get_model("exchange", "AuditChainHead")
    used = sorted(set(AuditEvent.objects.exclude(chain=1).values_list("chain", flat=True)))
    if used:
        raise RuntimeError(f"Cannot go back to one audit chain: chains {used} have events.")
    AuditChainHead.objects.exclude(id=1).delete()


def forward_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(HEAD_FORWARD, params=None)


def backward_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(HEAD_FORWARD_SINGLE_CHAIN, params=None)


class Migration(migrations.Migration):
    dependencies = [("exchange", "0007_idempotencykey")]

    operations = [
        # No UPDATE of any row: PostgreSQL adds a column with a constant default without touching the rows.
        migrations.AddField(
            model_name="auditevent",
            name="chain",
            field=models.PositiveSmallIntegerField(db_default=1, default=1, editable=False, verbose_name="chain"),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.UniqueConstraint(fields=("chain", "seq"), name="audit_chain_seq_unique"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(editable=False, verbose_name="sequence"),
        ),
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "ordering": ["-created_at", "-id"],
                "verbose_name": "audit event",
                "verbose_name_plural": "audit events",
            },
        ),
        migrations.RemoveConstraint(model_name="auditchainhead", name="audit_chain_head_singleton"),
        migrations.AlterField(
            model_name="auditchainhead",
            name="id",
            field=models.PositiveSmallIntegerField(editable=False, primary_key=True, serialize=False),
        ),
        migrations.AddConstraint(
            model_name="auditchainhead",
            constraint=models.CheckConstraint(condition=models.Q(("id__gte", 1)), name="audit_chain_head_id"),
        ),
        migrations.RunPython(forward_trigger, backward_trigger),
        migrations.RunPython(create_heads, drop_extra_heads),
    ]
