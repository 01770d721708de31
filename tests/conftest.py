"""Personas and shared fixtures.

The personas are the people of the access matrix: `anonymous`, `unadmitted` (a member of a verified
firm admitted nowhere), `domestic` (a buyer on the domestic board), `international` (a foreign buyer
on the international board), `provider` (a Chinese provider on both boards), and the staff roles
`ops` (exchange administrators), `reviewer`, `officer`, `clerk`, plus `superuser`.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.utils import translation
from rest_framework.test import APIClient

from exchange import roles
from exchange.models import Board, MemberFirm, User
from tests.factories import PASSWORD, MemberFirmFactory, UserFactory, admit, board, member


def _allow_audit_truncate(sender, connection, **kwargs) -> None:
    # Transactional tests flush every table with TRUNCATE on PostgreSQL, which the audit trail's trigger
    # refuses unless the session says otherwise (exchange/migrations/0005_audit_keyed_chain.py). Only the
    # test suite's own connections say so; the application's role has no TRUNCATE privilege anyway.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET exchange.audit_allow_truncate = on")


connection_created.connect(_allow_audit_truncate, dispatch_uid="tests.allow_audit_truncate")


# The data steps of the migrations that write reference data (structure, not demo data), in dependency order.
REFERENCE_DATA_STEPS = [
    ("exchange.migrations.0002_boards", "create"),
    ("listings.migrations.0002_categories", "create"),
    ("compliance.migrations.0002_seed_prc_calendar", "seed"),
    ("compliance.migrations.0005_seed_shanghai_ftz_2024", "seed"),
    ("settlements.migrations.0003_initial_fee_schedules", "forward"),
]


def _restore_reference_data(sender, **kwargs) -> None:
    # The test database is migrated once per session (per xdist worker), which writes the reference data
    # once. A transactional test flushes every table when it ends, and the flush then emits post_migrate:
    # that re-runs the staff roles' sync (exchange/apps.py) and, here, the data steps above (idempotent), so
    # that every test finds the database as migrated, whichever ran before it on its worker (xdist does not
    # keep pytest-django's "transactional tests last" order per worker).
    if not roles.is_last_migrated_app(sender):
        return
    from importlib import import_module

    from django.apps import apps as django_apps

    for module, step in REFERENCE_DATA_STEPS:
        getattr(import_module(module), step)(django_apps, None)


post_migrate.connect(_restore_reference_data, dispatch_uid="tests.restore_reference_data")


@pytest.fixture(autouse=True)
def _language_reset() -> Iterator[None]:
    # A request in Chinese leaves Chinese active in the thread (LocaleMiddleware activates the request's language
    # and nothing deactivates it after the response): a later test that reads a message outside any request would
    # get it in Chinese, depending on which test its xdist worker ran before.
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _audit_chain_one(monkeypatch) -> None:
    # A thread's first audit append starts at a random chain (exchange.services.audit_affinity); in tests the
    # main thread starts at chain 1, so that a test's trail is the same from one run to the next. Threads a
    # test starts still pick at random, as in production.
    from exchange.services import audit_affinity

    monkeypatch.setattr(audit_affinity, "chain", 1)


@pytest.fixture(autouse=True)
def _audit_checkpoints(settings, tmp_path) -> None:
    # Each test its own checkpoint file: a checkpoint of another test's trail would not match this one's.
    settings.AUDIT_CHECKPOINT_PATH = str(tmp_path / "audit-checkpoints.jsonl")
    settings.AUDIT_CHECKPOINT_STORAGE = ""


@pytest.fixture(autouse=True)
def _api_answers_match_the_schema(request, monkeypatch) -> Iterator[None]:
    """Every answer a test receives from an operation of the API is checked against the schema by openapi-core
    (tests/api/validation.py): the contract holds for every answer the tests provoke, errors included, and a
    status or field a view answers that the schema does not document fails the test that provoked it."""
    from django.test.client import Client

    from tests.api.validation import problem_of_test_response

    problems: list[str] = []
    original = Client.request

    def checked(self, **kwargs):
        response = original(self, **kwargs)
        found = problem_of_test_response(response)
        if found:
            problems.append(found)
        return response

    monkeypatch.setattr(Client, "request", checked)
    yield
    assert not problems, "Answers the schema does not document:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def _float_trap() -> Iterator[None]:
    # Money is Decimal built from strings or ints; mixing in a float raises in every test.
    context = decimal.getcontext()
    old = context.traps[decimal.FloatOperation]
    context.traps[decimal.FloatOperation] = True
    yield
    context.traps[decimal.FloatOperation] = old


@pytest.fixture(autouse=True)
def _compliance_report_policy_off(settings) -> None:
    # The policy that every listed product has a third-party compliance report on file is tested where it
    # is the subject (tests/compliance/test_gate.py::TestComplianceReportPolicy); elsewhere it would only add
    # one filing to every set-up.
    settings.COMPLIANCE_REPORT_REQUIRED = False


@pytest.fixture(scope="session")
def _sandbox_index_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("sandbox-index"))


@pytest.fixture(autouse=True)
def _sandbox_index(settings, _sandbox_index_dir) -> None:
    # The sandbox's person indexes (a local cache) in the test run's own directory, not the checkout's var/, made
    # in the request that needs one (in production a thread makes it beside the requests: tested where it is the
    # subject, tests/settlements/test_sandbox.py).
    settings.SANDBOX_INDEX_DIR = _sandbox_index_dir
    settings.SANDBOX_INDEX_INLINE = True


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # Throttle counters live in the cache; a test must not inherit another's.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def domestic_board(db) -> Board:
    return board(Board.Code.DOMESTIC)


@pytest.fixture
def international_board(db) -> Board:
    return board(Board.Code.INTERNATIONAL)


@pytest.fixture
def boards(domestic_board: Board, international_board: Board) -> dict[str, Board]:
    return {"domestic": domestic_board, "international": international_board}


def staff_role(name: str) -> Group:
    """A staff role's group, as migrate (and every flush, through post_migrate) left it."""
    group = Group.objects.filter(name=name).first()
    return group if group is not None else roles.sync_staff_roles()[name]


def _staff(email: str, role: str | None) -> User:
    user = UserFactory(email=email, is_staff=True, is_superuser=role is None)
    if role:
        user.groups.add(staff_role(role))
    return user


def _staff_fixture(name: str, email: str, role: str | None):
    """A fixture `name`: a staff account `email` with the one staff role `role` (a superuser when None)."""

    @pytest.fixture(name=name)
    def fixture(db) -> User:
        return _staff(email, role)

    return fixture


superuser = _staff_fixture("superuser", "root@exchange.example", None)
ops = _staff_fixture("ops", "ops@exchange.example", roles.EXCHANGE_ADMINS)
reviewer = _staff_fixture("reviewer", "reviewer@exchange.example", roles.LISTING_REVIEWERS)
officer = _staff_fixture("officer", "officer@exchange.example", roles.COMPLIANCE_OFFICERS)
clerk = _staff_fixture("clerk", "clerk@exchange.example", roles.SETTLEMENT_CLERKS)


@pytest.fixture
def unadmitted(db, boards) -> User:
    firm = MemberFirmFactory(legal_name_en="Unadmitted Data Co.", role=MemberFirm.Role.BUYER)
    return member(firm, "firm_admin", "alice@unadmitted.example")


@pytest.fixture
def domestic(db, boards, superuser) -> User:
    firm = admit(MemberFirmFactory(legal_name_en="Domestic Buyer Co.", role=MemberFirm.Role.BUYER), "domestic")
    return member(firm, "firm_admin", "bob@domestic.example")


@pytest.fixture
def international(db, boards, superuser) -> User:
    firm = admit(
        MemberFirmFactory(legal_name_en="Overseas Buyer Pte. Ltd.", country="SG", role=MemberFirm.Role.BUYER),
        "international",
    )
    return member(firm, "firm_admin", "carol@overseas.example")


@pytest.fixture
def provider(db, boards, superuser) -> User:
    firm = admit(
        MemberFirmFactory(legal_name_en="Provider Data Co.", role=MemberFirm.Role.PROVIDER), "domestic", "international"
    )
    return member(firm, "firm_admin", "dave@provider.example")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def staff_groups(db) -> dict[str, Group]:
    return {name: staff_role(name) for name in roles.STAFF_ROLES}
