"""Keyed audit hashes from here on, and on PostgreSQL no TRUNCATE of the trail and no head moved backward.

Existing rows keep their plain SHA-256 hashes: re-hashing them with the key would need UPDATEs, which the
append-only trigger refuses (and should). Instead, a trail that has rows is sealed: one keyed event is
appended whose prev_hash is the last unkeyed row's hash, so that the key vouches for everything before it.
verify_audit accepts unkeyed rows only as such a sealed prefix (exchange.services.audit_verify).

TRUNCATE is refused by a statement trigger unless the session set `exchange.audit_allow_truncate = on`.
That escape exists for the test suite, whose transactional tests flush every table with TRUNCATE
(tests/conftest.py sets it on its connections). The application's role cannot use it: it has no TRUNCATE
privilege (`manage.py db_grant_app_role`). The owner of the tables can, as it can drop any trigger; that is
why the keyed hashes and the checkpoints outside the database, not these triggers, are the real control.
"""

from django.db import migrations
from django.utils import timezone

from exchange.audit import audit_hash, audit_key

FORWARD = """
CREATE OR REPLACE FUNCTION exchange_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('exchange.audit_allow_truncate', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION '% is append-only (TRUNCATE refused)', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER exchange_auditevent_no_truncate
    BEFORE TRUNCATE ON exchange_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION exchange_audit_no_truncate();
CREATE TRIGGER exchange_auditchainhead_no_truncate
    BEFORE TRUNCATE ON exchange_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION exchange_audit_no_truncate();

-- The head only moves forward, and only onto an event that exists with that hash.
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
CREATE TRIGGER exchange_auditchainhead_forward
    BEFORE UPDATE ON exchange_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION exchange_audit_head_forward();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS exchange_auditchainhead_forward ON exchange_auditchainhead;
DROP FUNCTION IF EXISTS exchange_audit_head_forward();
DROP TRIGGER IF EXISTS exchange_auditchainhead_no_truncate ON exchange_auditchainhead;
DROP TRIGGER IF EXISTS exchange_auditevent_no_truncate ON exchange_auditevent;
DROP FUNCTION IF EXISTS exchange_audit_no_truncate();
"""


def _hash(event, key):
    fields = ("seq", "prev_hash", "created_at", "actor_id", "actor_repr", "verb", "object_type", "object_id")
    fields += ("object_repr", "payload", "request_id")
    return audit_hash(key=key, **{name: getattr(event, name) for name in fields})


def seal_unkeyed_rows(apps, schema_editor):
    AuditEvent = apps.get_model("exchange", "AuditEvent")
    AuditChainHead = apps.get_model("exchange", "AuditChainHead")
    last = AuditEvent.objects.order_by("-seq").first()
    if last is None or last.hash != _hash(last, None):
        return  # nothing to seal: no rows, or the trail already ends in a keyed row
    AuditChainHead.objects.select_for_update().get_or_create(id=1)
    seal = AuditEvent(
        seq=last.seq + 1,
        created_at=timezone.now(),
        actor_repr="system",
        verb="audit.seal",
        payload={"unkeyed_through": last.seq},
        prev_hash=last.hash,
    )
    seal.hash = _hash(seal, audit_key())
    seal.save(force_insert=True)
    AuditChainHead.objects.filter(id=1).update(last_seq=seal.seq, last_hash=seal.hash)


def forward_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("exchange", "0004_memberfirm_is_judicial_authority")]

    operations = [
        # Backward leaves the seal: it is an ordinary keyed event, and the trail is append-only.
        migrations.RunPython(seal_unkeyed_rows, migrations.RunPython.noop),
        migrations.RunPython(forward_triggers, backward_triggers),
    ]
