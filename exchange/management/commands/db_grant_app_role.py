"""Give the application's database role what it needs and no more (PostgreSQL; run as the owner after migrate).

Migrations run as the role that owns the tables; gunicorn and Celery connect as a DML-only role. Only an
owner may ALTER a table or DISABLE its triggers, so the application's role cannot switch off the audit
trail's append-only triggers; on top of that it gets no UPDATE, DELETE or TRUNCATE on the trail, and on the
chains' heads only SELECT and UPDATE: every append moves one head forward (which a trigger allows only onto an
event of that chain), but heads are created by `migrate`, as the owner, and never deleted. Idempotent: run it
after every migrate.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from exchange.models import AppendOnlyModel, AuditChainHead, AuditEvent


def append_only_tables() -> list[str]:
    """The tables of every installed model built on the core's AppendOnlyModel, whichever app it belongs to."""
    return sorted(m._meta.db_table for m in apps.get_models() if issubclass(m, AppendOnlyModel))


class Command(BaseCommand):
    help = (
        "Grant ROLE connect, schema usage, SELECT/INSERT/UPDATE/DELETE on every table (now and future) and the "
        "sequences, then revoke what would let it rewrite the audit trail. PostgreSQL only; run as the owner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="the application's database role (e.g. exchange_app); it must exist")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, role: str, database: str, **options: Any) -> None:
        connection = connections[database]
        if connection.vendor != "postgresql":
            self.stdout.write(f"Nothing to do on {connection.vendor}: database roles exist on PostgreSQL only.")
            return
        q = connection.ops.quote_name
        audit, head = AuditEvent._meta.db_table, AuditChainHead._meta.db_table
        with transaction.atomic(using=database), connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_schema(), current_user")
            db_name, schema, owner = cursor.fetchone()
            cursor.execute(
                "SELECT rolsuper, pg_has_role(%s, tableowner, 'USAGE') "
                "FROM pg_roles, pg_tables WHERE rolname = %s AND tablename = %s AND schemaname = %s",
                [role, role, audit, schema],
            )
            row = cursor.fetchone()
            if row is None:
                raise CommandError(f"There is no role {role!r} (or no {audit} table: run migrate first).")
            if any(row):
                raise CommandError(
                    f"{role!r} is a superuser or acts as the owner of {audit}: it could switch the audit triggers "
                    "off. Give the application a role of its own."
                )
            role_q, schema_q = q(role), q(schema)
            for statement in [
                f"GRANT CONNECT ON DATABASE {q(db_name)} TO {role_q}",
                f"GRANT USAGE ON SCHEMA {schema_q} TO {role_q}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_q} TO {role_q}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {role_q}",
                # Tables and sequences later migrations create (as this same owner) get the same grants.
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_q} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role_q}",
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_q} GRANT USAGE, SELECT ON SEQUENCES TO {role_q}",
                # The trail is insert-only; each append updates one head, which migrate created and nobody deletes.
                f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {q(audit)} FROM {role_q}",
                f"REVOKE INSERT, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {q(head)} FROM {role_q}",
                # Every other append-only table (the ledger's postings and entries): corrections are new rows.
                *(
                    f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {q(table)} FROM {role_q}"
                    for table in append_only_tables()
                ),
            ]:
                cursor.execute(statement)
        self.stdout.write(
            self.style.SUCCESS(
                f"Granted {role} DML on {db_name}.{schema} (as {owner}), without UPDATE/DELETE/TRUNCATE on {audit} "
                f"or INSERT/DELETE/TRUNCATE on {head}."
            )
        )
