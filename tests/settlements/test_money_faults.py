"""Crashes (RELIABILITY.md T9, T11): a process failing in the middle of funding, release, acceptance, settlement or a
refund leaves no partial state (no order, no entry, no counter change, no outbox row, no audit row), and the
operation retried completes exactly once. Every money task run twice gives the same state, and a worker killed
partway through a task (SystemExit) leaves the ledger balanced for the next run to finish.

A crash is an exception no service catches (`Crash`, or SystemExit for a killed worker) raised from inside the
operation by a patched step. The package's fixture checks the ledger's invariants after each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from celery import Celery
from django.conf import settings
from django.utils import timezone

from compliance import services as compliance
from compliance.models import EvidenceKind, ExportCounter, ProductExport
from compliance.services import counters as compliance_counters
from exchange.celery import app as celery_app
from exchange.models import OutboxEvent
from exchange.outbox import outbox_relay, outbox_retry
from listings.models import Revision
from settlements.models import Account, JournalEntry, Order, Posting
from settlements.selectors import ledger_problems
from settlements.services import access, orders
from tests.compliance.factories import filing, with_pi
from tests.factories import MemberFirmFactory, PricePlanFactory, admit, listed_product, member
from tests.settlements.factories import fund
from tests.settlements.ledger_state import money_identity_problems, state

pytestmark = pytest.mark.django_db
D = Decimal


class Crash(RuntimeError):
    """A process failing mid-operation: not a refusal, nothing in the services catches it."""


def crash(
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    name: str,
    *,
    when: Callable[..., bool] = lambda *a, **k: True,
    nth: int = 1,
    exc: type[BaseException] = Crash,
) -> dict[str, int]:
    """Make `target.name` raise `exc` on its `nth` call that matches `when`, once; before and after, it works."""
    original = getattr(target, name)
    seen = {"calls": 0, "crashed": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not seen["crashed"] and when(*args, **kwargs):
            seen["calls"] += 1
            if seen["calls"] == nth:
                seen["crashed"] = 1
                raise exc(f"crashed in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return seen


def task(name: str) -> Any:
    """A registered task by name, every app's tasks module imported first (as a worker does on start)."""
    celery_app.loader.import_default_modules()
    return celery_app.tasks[name]


def topic_is(topic: str) -> Callable[..., bool]:
    """For orders._publish(order, topic, ...)."""
    return lambda *args, **kwargs: args[1] == topic


def one_off(product, amount: str = "100.00"):
    return PricePlanFactory(product=product, name_en="Once", kind="one_off", period="", amount=D(amount))


def place(user, product, plan, **fields) -> Order:
    return orders.order_place(
        actor=user, product_id=product.pk, plan_id=plan.pk, delivery_mode="file", intended_use="Analytics.", **fields
    )


def relay_everything() -> None:
    outbox_relay(limit=10_000)
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def pipia_and_consent(provider, officer) -> None:
    for kind in (EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD):
        filing(provider, kind, accepted_by=officer)


# --- Funding and release in the order's transaction -------------------------------------------------------------

FUNDING_CRASHES = {
    "after the order and its charge, before the posting": lambda mp: crash(mp, orders, "_fund"),
    "inside the posting, after the entry row": lambda mp: crash(mp, Posting.objects, "bulk_create"),
    "inside the release, the export counted": lambda mp: crash(
        mp,
        compliance_counters,
        "audit_record",
        when=lambda **kw: kw.get("verb") == "compliance.export_recorded",
    ),
    "after the release, publishing it": lambda mp: crash(mp, orders, "_publish", when=topic_is("released")),
}


@pytest.mark.parametrize("where", FUNDING_CRASHES)
def test_a_crash_while_placing_an_order_leaves_nothing_and_the_retry_places_it_once(
    where, provider, reviewer, officer, international, clerk, monkeypatch
):
    # given a product of 50,000 individuals (exempt, counted on the exporter's counter when released) and cash
    product = with_pi(listed_product(provider, reviewer), 50_000)
    pipia_and_consent(provider, officer)
    plan = one_off(product)
    fund(international, clerk, "1000.00")
    before = state()

    # when the order's transaction crashes partway
    crashed = FUNDING_CRASHES[where](monkeypatch)
    with pytest.raises(Crash):
        place(international, product, plan)

    # then nothing of it is left: no order, charge, entry, counter change, assessment, case, outbox or audit row
    assert crashed["crashed"] == 1
    assert state() == before

    # and the order placed again is placed once, released and counted once
    order = place(international, product, plan)
    assert order.status == "released"
    assert Order.objects.count() == 1 and JournalEntry.objects.filter(kind="funding").count() == 1
    assert ExportCounter.objects.get(exporter=product.provider).personal_info_subjects == 50_000
    assert ProductExport.objects.get(product=product).trades == 1
    topics = OutboxEvent.objects.filter(key=str(order.pk), topic__startswith="order.").values_list("topic", flat=True)
    assert list(topics.order_by("pk")) == ["order.created", "order.released"]
    assert OutboxEvent.objects.filter(topic="entitlement.started", payload__order=order.pk).count() == 1


def test_a_crash_while_releasing_a_held_order_leaves_it_held_and_the_relay_releases_it_once(
    provider, reviewer, officer, clerk, ops, monkeypatch
):
    # given US-origin personal information held for a Hong Kong buyer until an officer reviews it
    product = with_pi(listed_product(provider, reviewer), 50_000)
    Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
    pipia_and_consent(provider, officer)
    hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"), "trader")
    fund(hk, clerk, "1000.00")
    order = place(hk, product, one_off(product))
    assert order.status == "compliance_hold"
    relay_everything()
    compliance.case_clear(case=order.case, actor=officer, resolution="Not covered data.")
    before = state()

    # when the relay's release of the order crashes after counting the export
    crash(
        monkeypatch,
        compliance_counters,
        "audit_record",
        when=lambda **kw: kw.get("verb") == "compliance.export_recorded",
    )
    assert outbox_relay()["failed"] == 1

    # then the order is still held with its escrow, nothing was counted, and the event waits with its error
    assert state() == before
    event = OutboxEvent.objects.get(topic="compliance.case_cleared")
    assert event.published_at is None and "Crash" in event.last_error

    # and once retried, the order is released and its export counted, once
    outbox_retry(events=[event], actor=ops)
    assert outbox_relay()["delivered"] == 1
    order.refresh_from_db()
    assert order.status == "released"
    assert ExportCounter.objects.get(exporter=product.provider).personal_info_subjects == 50_000
    assert ProductExport.objects.get(product=product).trades == 1
    settled = state()
    outbox_retry(events=[event], actor=ops)
    outbox_relay()
    assert state() == settled


# --- Acceptance and settlement ------------------------------------------------------------------------------------


@pytest.fixture
def delivered(provider, reviewer, international, clerk) -> Order:
    product = listed_product(provider, reviewer)
    fund(international, clerk, "1000.00")
    order = place(international, product, one_off(product, "1000.00"))
    orders.order_confirm_delivery(order=order, actor=provider)
    relay_everything()
    return Order.objects.get(pk=order.pk)


def test_a_crash_while_accepting_leaves_the_order_delivered_and_the_retry_accepts_once(
    delivered, international, monkeypatch
):
    before = state()
    crash(monkeypatch, orders, "_publish", when=topic_is("accepted"))  # after the status, audit and timeline
    with pytest.raises(Crash):
        orders.order_accept(order=delivered, actor=international)
    assert state() == before
    orders.order_accept(order=Order.objects.get(pk=delivered.pk), actor=international)
    assert Order.objects.get(pk=delivered.pk).status == "accepted"
    assert OutboxEvent.objects.filter(topic="order.accepted").count() == 1


SETTLEMENT_CRASHES = {
    "inside the settlement's posting": lambda mp: crash(mp, Posting.objects, "bulk_create"),
    "after the settlement, publishing it": lambda mp: crash(mp, orders, "_publish", when=topic_is("settled")),
}


@pytest.mark.parametrize("where", SETTLEMENT_CRASHES)
def test_a_crash_while_settling_leaves_the_order_accepted_and_the_relay_settles_it_once(
    where, delivered, provider, international, ops, monkeypatch
):
    orders.order_accept(order=delivered, actor=international)
    before = state()

    # when the relay's settlement crashes partway
    SETTLEMENT_CRASHES[where](monkeypatch)
    assert outbox_relay()["failed"] == 1

    # then the order is accepted, its money still in escrow, no settlement entry
    assert state() == before

    # and the retried event settles it once
    event = OutboxEvent.objects.get(topic="order.accepted")
    outbox_retry(events=[event], actor=ops)
    outbox_relay()
    assert Order.objects.get(pk=delivered.pk).status == "settled"
    assert JournalEntry.objects.filter(kind="settlement").count() == 1
    payable = Account.objects.get(firm=provider.membership.firm, kind="payable", currency="CNY")
    assert payable.balance == D("992.00")
    after = state()
    outbox_retry(events=[event], actor=ops)
    outbox_relay()
    orders.order_settle(order=delivered)
    assert state() == after


# --- Refunds ------------------------------------------------------------------------------------------------------

REFUND_CRASHES = {
    # a metered order holds two charges (its period and its usage budget): the crash comes after the first is closed
    "in part, between the two charges": (D("60.00"), lambda mp: crash(mp, orders, "_close_charge", nth=2)),
    "whole, in the second charge's posting": (None, lambda mp: crash(mp, Posting.objects, "bulk_create", nth=2)),
    "after the refund, publishing it": (D("0.01"), lambda mp: crash(mp, orders, "_publish", when=topic_is("refunded"))),
}


@pytest.mark.parametrize("where", REFUND_CRASHES)
def test_a_crash_while_refunding_leaves_everything_held_and_the_retry_refunds_once(
    where, provider, reviewer, international, clerk, monkeypatch
):
    # given a metered order: 100.00 for the month and a usage budget of 250.00, both held in escrow
    product = listed_product(provider, reviewer)
    plan = PricePlanFactory(
        product=product, kind="metered", period="month", amount=D("100.00"), included_calls=1000,
        unit_price=D("0.0125"),
    )  # fmt: skip
    fund(international, clerk, "1000.00")
    order = place(international, product, plan, usage_budget=D("250.00"))
    assert order.charges.count() == 2
    amount, arm = REFUND_CRASHES[where]
    before = state()

    # when the refund crashes partway
    arm(monkeypatch)
    with pytest.raises(Crash):
        orders.order_refund(order=order, actor=clerk, reason="Not delivered.", amount=amount)

    # then both charges are still held, no entry of the refund exists, the order is as it was
    assert state() == before

    # and the refund retried happens once
    orders.order_refund(order=Order.objects.get(pk=order.pk), actor=clerk, reason="Not delivered.", amount=amount)
    # (`amount` is what returns of the price; the usage budget always returns whole)
    refunded = amount + D("250.00") if amount else D("350.00")
    cash = Account.objects.get(firm=international.membership.firm, kind="cash", currency="CNY")
    assert cash.balance == D("650.00") + refunded
    assert Order.objects.get(pk=order.pk).status == "refunded"
    assert JournalEntry.objects.filter(kind="refund").count() == 2
    assert OutboxEvent.objects.filter(topic="order.refunded").count() == 1


# --- Tasks: twice, and killed partway -------------------------------------------------------------------------------

MONEY_TASKS = [
    "settlements.accept_due_orders",
    "settlements.expire_access_requests",
    "settlements.reconcile_ledger",
    "exchange.outbox_relay",
    "exchange.outbox_prune",
]


@pytest.fixture
def busy(provider, reviewer, international, clerk, officer) -> Iterator[None]:
    """An exchange with work for every task a month after its day: a delivery past its acceptance window, an
    acceptance waiting for its settlement (its event not yet relayed), a held order, access requests to expire,
    and published events past their retention."""
    product = listed_product(provider, reviewer)
    gated = listed_product(provider, reviewer)
    Revision.objects.filter(pk=gated.listed_revision_id).update(requires_approval=True)
    us = listed_product(provider, reviewer)
    Revision.objects.filter(pk=us.listed_revision_id).update(origin_countries=["US"])
    fund(international, clerk, "10000.00")
    hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"), "trader")
    fund(hk, clerk, "1000.00")
    plan = one_off(product, "100.00")
    due, waiting = place(international, product, plan), place(international, product, plan)
    for order in (due, waiting):
        orders.order_confirm_delivery(order=order, actor=provider)
    assert place(hk, us, one_off(us, "50.00")).status == "compliance_hold"
    access.access_request_create(actor=international, product_id=gated.pk, intended_use="Scoring.")
    relay_everything()
    orders.order_accept(order=Order.objects.get(pk=waiting.pk), actor=international)
    later = timezone.now() + timedelta(days=settings.OUTBOX_RETENTION_DAYS + 1)
    with time_machine.travel(later, tick=False):
        yield


@pytest.mark.parametrize("name", MONEY_TASKS)
def test_every_money_task_run_twice_gives_the_same_state(busy, name):
    before = state()
    task(name).apply(throw=True)
    once = state()
    task(name).apply(throw=True)
    assert state() == once
    if name != "settlements.reconcile_ledger":  # it only reads
        assert once != before, f"{name} had work to do"
    assert ledger_problems() == [] and money_identity_problems() == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_partway_through_accepting_due_orders_leaves_the_ledger_balanced(
    provider, reviewer, international, clerk, monkeypatch
):
    # given three deliveries past their acceptance window (committed; each acceptance commits on its own and the
    # relay kicked after it settles it)
    product = listed_product(provider, reviewer)
    fund(international, clerk, "1000.00")
    plan = one_off(product, "100.00")
    placed = [place(international, product, plan) for _ in range(3)]
    for order in placed:
        orders.order_confirm_delivery(order=order, actor=provider)

    with time_machine.travel(timezone.now() + timedelta(days=settings.SETTLEMENT_ACCEPTANCE_DAYS, hours=1)):
        # when the worker is killed while accepting the second
        crash(monkeypatch, orders, "order_accept", nth=2, exc=SystemExit)
        with pytest.raises(SystemExit):
            task("settlements.accept_due_orders").apply(throw=True)

        # then the first is accepted and settled, the others are still delivered, and the ledger is sound
        statuses = sorted(Order.objects.values_list("status", flat=True))
        assert statuses == ["delivered", "delivered", "settled"]
        assert ledger_problems() == [] and money_identity_problems() == []

        # and the next run finishes the work, once
        task("settlements.accept_due_orders").apply(throw=True)
        assert set(Order.objects.values_list("status", flat=True)) == {"settled"}
        assert JournalEntry.objects.filter(kind="settlement").count() == 3
        after = state()
        task("settlements.accept_due_orders").apply(throw=True)
        task("exchange.outbox_relay").apply(throw=True)
        assert state() == after


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_partway_through_the_relay_leaves_the_ledger_balanced(
    provider, reviewer, international, clerk, monkeypatch
):
    # given two accepted orders whose settlement events wait for the relay (no relay kicked after the commits)
    monkeypatch.setattr("exchange.outbox._kick_relay", lambda: None)
    product = listed_product(provider, reviewer)
    fund(international, clerk, "1000.00")
    plan = one_off(product, "100.00")
    for _ in range(2):
        order = place(international, product, plan)
        orders.order_confirm_delivery(order=order, actor=provider)
        orders.order_accept(order=Order.objects.get(pk=order.pk), actor=international)

    # when the relay's worker is killed while settling the second
    import settlements.subscribers

    crash(monkeypatch, settlements.subscribers, "order_settle", nth=2, exc=SystemExit)
    with pytest.raises(SystemExit):
        task("exchange.outbox_relay").apply(throw=True)

    # then the first is settled, the second's event is still pending and not marked failed, the ledger is sound
    assert sorted(Order.objects.values_list("status", flat=True)) == ["accepted", "settled"]
    pending = OutboxEvent.objects.get(topic="order.accepted", published_at__isnull=True)
    assert pending.attempts == 0 and pending.last_error == ""
    assert ledger_problems() == [] and money_identity_problems() == []

    # and the next run settles the second, once
    task("exchange.outbox_relay").apply(throw=True)
    assert set(Order.objects.values_list("status", flat=True)) == {"settled"}
    assert JournalEntry.objects.filter(kind="settlement").count() == 2
    after = state()
    task("exchange.outbox_relay").apply(throw=True)
    assert state() == after


# --- The task registry ----------------------------------------------------------------------------------------------


def tasks_acking_late_without_being_idempotent(app: Celery) -> list[str]:
    """Tasks acknowledged only after they ran (acks_late: redelivered if the worker dies) must be safe to run
    twice, and say so with `idempotent = True` (e.g. `@shared_task(acks_late=True, idempotent=True)`)."""
    app.loader.import_default_modules()
    return sorted(
        name
        for name, task in app.tasks.items()
        if not name.startswith("celery.") and task.acks_late and getattr(task, "idempotent", False) is not True
    )


def test_tasks_acknowledged_late_are_marked_idempotent():
    # The project acknowledges every task early (CELERY_TASK_ACKS_LATE = False, no task overrides it): nothing is
    # redelivered after a worker dies, so none needs the mark today; a task that opts in must carry it.
    assert tasks_acking_late_without_being_idempotent(celery_app) == []
    assert set(MONEY_TASKS) <= set(celery_app.tasks)


def test_the_registry_check_finds_a_late_task_without_the_mark():
    app = Celery("registry-check", set_as_current=False)

    @app.task(name="t.late", acks_late=True)
    def late() -> None: ...

    @app.task(name="t.late_idempotent", acks_late=True, idempotent=True)
    def late_idempotent() -> None: ...

    @app.task(name="t.early")
    def early() -> None: ...

    assert tasks_acking_late_without_being_idempotent(app) == ["t.late"]
