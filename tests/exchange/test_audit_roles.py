"""On PostgreSQL: what the owner's forgeries look like to verify_audit, and what the application's role may not do.

The test database belongs to the superuser the suite connects as, which plays the owner; the application's role
is created here (cluster-wide, idempotently), granted by `db_grant_app_role`, and connected to with psycopg.
"""

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from exchange import services
from exchange.audit import audit_hash
from exchange.models import AuditChainHead, AuditEvent
from tests.factories import MemberFirmFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL triggers and roles")

APP_ROLE = "exchange_test_app"
FIELDS = ["chain", "seq", "prev_hash", "created_at", "actor_id", "actor_repr", "verb", "object_type", "object_id"]
FIELDS += ["object_repr", "payload", "request_id"]


@pytest.fixture
def trail(audit_chain, ops, boards):
    firm = MemberFirmFactory()
    services.firm_admit(firm=firm, board=boards["domestic"], actor=ops)
    return list(AuditEvent.objects.order_by("seq"))


def _sql(sql: str, params: list | dict | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _disable(table: str, trigger: str) -> None:
    # The test's own inserts leave deferred foreign-key checks pending, which ALTER TABLE will not run past.
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")


@pytest.mark.django_db
def test_a_forged_chain_with_the_triggers_disabled_is_reported(trail):
    # given the owner switches the triggers off, rewrites the first event, re-hashes the chain with plain SHA-256
    # and moves the head onto the forged end
    _disable("exchange_auditevent", "exchange_auditevent_append_only")
    _disable("exchange_auditchainhead", "exchange_auditchainhead_forward")
    prev = ""
    for event in trail:
        event.verb = "board.revoke" if event.seq == 1 else event.verb
        event.prev_hash = prev
        event.hash = prev = audit_hash(key=None, **{name: getattr(event, name) for name in FIELDS})
        _sql(
            "UPDATE exchange_auditevent SET verb = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [event.verb, event.prev_hash, event.hash, event.pk],
        )
    _sql("UPDATE exchange_auditchainhead SET last_hash = %s WHERE id = %s", [prev, trail[0].chain])
    # when / then: unkeyed rows are believed only as the start of chain 1, sealed; anywhere else they are altered
    with pytest.raises(CommandError, match=f"broken: {1 if trail[0].chain == 1 else len(trail)} problem"):
        call_command("verify_audit")
    problem = services.audit_verify()[0]
    assert ("hashed without the audit key" if trail[0].chain == 1 else "was altered") in problem


@pytest.mark.django_db
def test_a_truncated_and_reset_trail_is_reported_against_the_checkpoints(trail):
    # given a checkpoint, then the owner truncates the trail (the suite's sessions may: tests/conftest.py) and
    # resets the head past its trigger
    call_command("audit_checkpoint")
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql("TRUNCATE exchange_auditevent")
    _disable("exchange_auditchainhead", "exchange_auditchainhead_forward")
    _sql("UPDATE exchange_auditchainhead SET last_seq = 0, last_hash = ''")
    # then the empty trail and its heads agree, but not with the checkpoint
    with pytest.raises(CommandError, match="broken: 1 problem"):
        call_command("verify_audit")
    assert services.audit_verify()[0].startswith(f"chain {trail[0].chain} ends at event #0 but the checkpoint of ")


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["exchange_auditevent", "exchange_auditchainhead"])
def test_truncate_is_refused_without_the_test_suites_setting(trail, table):
    with pytest.raises(DatabaseError, match="append-only \\(TRUNCATE refused\\)"), transaction.atomic():
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
        _sql("SET LOCAL exchange.audit_allow_truncate = off")
        _sql(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.count() == len(trail)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE exchange_auditchainhead SET last_seq = last_seq - 1 WHERE id = %(chain)s",
        "UPDATE exchange_auditchainhead SET last_hash = 'f' WHERE id = %(chain)s",
        "UPDATE exchange_auditchainhead SET last_seq = last_seq + 5 WHERE id = %(chain)s",
        # another chain's head onto this chain's last event: it exists, but not in that chain
        "UPDATE exchange_auditchainhead SET (last_seq, last_hash) = "
        "(SELECT last_seq, last_hash FROM exchange_auditchainhead WHERE id = %(chain)s) WHERE id = %(chain)s + 1",
        "UPDATE exchange_auditchainhead SET id = 99 WHERE id = %(chain)s",
    ],
    ids=["backward", "other-hash", "onto-no-event", "onto-another-chain", "renumbered"],
)
def test_a_head_moves_only_forward_onto_an_event_of_its_chain(trail, sql):
    chain = trail[0].chain
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        _sql(sql, {"chain": chain})
    heads = dict(AuditChainHead.objects.values_list("id", "last_seq"))
    assert heads == {n: trail[-1].seq if n == chain else 0 for n in range(1, settings.AUDIT_CHAINS + 1)}


@pytest.mark.django_db
def test_the_grant_refuses_a_superuser(trail):
    with pytest.raises(CommandError, match="superuser or acts as the owner"):
        call_command("db_grant_app_role", connection.settings_dict["USER"] or "postgres")


def _ensure_app_role() -> None:
    # Roles belong to the cluster, not the test database: create it once, whoever gets there first.
    _sql(
        f"""DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"""
    )


def _app_connection() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, dbname=s["NAME"], user=APP_ROLE, autocommit=True
    )


@pytest.fixture
def app_role(transactional_db):
    # Committed grants, so that the role's own connection sees them: a transactional test.
    _ensure_app_role()
    call_command("db_grant_app_role", APP_ROLE)
    with _app_connection() as conn:
        yield conn


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE exchange_auditevent DISABLE TRIGGER ALL",
        "ALTER TABLE exchange_auditevent DISABLE TRIGGER exchange_auditevent_append_only",
        "ALTER TABLE exchange_auditchainhead DISABLE TRIGGER exchange_auditchainhead_forward",
        "DROP TRIGGER exchange_auditevent_no_truncate ON exchange_auditevent",
        "UPDATE exchange_auditevent SET verb = 'forged'",
        "DELETE FROM exchange_auditevent",
        "TRUNCATE exchange_auditevent",
        "DELETE FROM exchange_auditchainhead",
        "TRUNCATE exchange_auditchainhead",
        # heads are made by migrate, as the owner: an extra one is refused, and no head moves but forward
        "INSERT INTO exchange_auditchainhead (id, last_seq, last_hash) VALUES (99, 0, '')",
        "UPDATE exchange_auditchainhead SET last_seq = 0, last_hash = ''",
        "SET session_replication_role = replica",
    ],
)
def test_the_app_role_cannot_rewrite_the_trail(ops, app_role, sql):
    services.audit_record(actor=ops, verb="test.before")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        # The test suite's escape does not help it either: it lacks the privilege before the trigger is asked.
        app_role.execute("SET exchange.audit_allow_truncate = on")
        app_role.execute(sql)
    assert services.audit_verify() == []


def test_the_app_role_appends_through_the_normal_path_and_reads(ops, app_role):
    # given the application's connection as the app role
    as_app = connections.create_connection("default")
    as_app.settings_dict = {**as_app.settings_dict, "USER": APP_ROLE, "PASSWORD": ""}
    owner = connections["default"]
    connections["default"] = as_app
    try:
        # when it records events as the services do
        services.audit_record(actor=None, verb="test.as_app")
        services.audit_record(actor=None, verb="test.as_app_again")
        with as_app.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (APP_ROLE,)
    finally:
        as_app.close()
        connections["default"] = owner
    # then the trail is whole and the role reads it
    assert services.audit_verify() == []
    (count,) = app_role.execute("SELECT count(*) FROM exchange_auditevent WHERE verb LIKE 'test.as_app%'").fetchone()
    assert count == 2
