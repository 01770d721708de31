"""On PostgreSQL the database itself refuses UPDATE and DELETE on audit rows.

The ORM already refuses them (AuditEvent.save/delete, its QuerySet); this holds the line against raw SQL
and other clients too. TRUNCATE (test database flushes) is a separate privilege that production roles
do not need. SQLite gets no trigger: its flush deletes rows one by one, and it is not a production
database here.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION exchange_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'exchange_auditevent is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER exchange_auditevent_append_only
    BEFORE UPDATE OR DELETE ON exchange_auditevent
    FOR EACH ROW EXECUTE FUNCTION exchange_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS exchange_auditevent_append_only ON exchange_auditevent;
DROP FUNCTION IF EXISTS exchange_audit_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("exchange", "0002_boards")]

    operations = [migrations.RunPython(forward, backward)]
