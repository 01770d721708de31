"""Races on money, on PostgreSQL with real concurrent connections and committed transactions (a barrier starts the
threads together; each closes its connections when done). SQLite takes one writer at a time: nothing to race.

- one firm's cash covering K of N orders placed at once: exactly K orders, cash never below zero;
- two buyers crossing the exporter's yearly personal-information threshold at once: the second is decided on the
  first's count (the gate holds the counter's lock until the order's transaction ends);
- one accepted order settled from several threads, and its outbox event relayed by two relays: one settlement;
- two clerks approving, then paying, the same withdrawal: one wins, the other is told `stale_state`;
- a product suspended while it is being ordered: no order commits after the suspension.

The package's fixture checks the ledger's invariants after each test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from compliance.calendar import shanghai_year
from compliance.models import EvidenceKind, ExportCounter, ProductExport
from compliance.services.counters import export_counter_lock
from exchange.exceptions import ApplicationError
from exchange.models import OutboxDelivery, OutboxEvent
from exchange.outbox import outbox_relay
from listings import services as listing_services
from settlements.models import Account, Entitlement, JournalEntry, Order, OrderEvent, Withdrawal
from settlements.services import orders, withdrawals
from settlements.services.ledger import account_for, exchange_account
from tests.compliance.factories import filing, with_pi
from tests.factories import MemberFirmFactory, PricePlanFactory, admit, listed_product, member
from tests.settlements.factories import fund

ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRES, reason="real concurrent transactions need PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]
D = Decimal


def together(*calls: Callable[[], Any]) -> tuple[list[Any], list[BaseException | None]]:
    """Run the calls at the same moment, each on its own connection; (results, errors) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except Exception as exc:  # collected and asserted on
            errors[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running: a deadlock?"
    return results, errors


def codes(errors: list[BaseException | None]) -> list[str]:
    return sorted(getattr(e, "code", repr(e)) for e in errors if e is not None)


def one_off(product, amount: str, currency: str = "CNY"):
    return PricePlanFactory(
        product=product, name_en="Once", kind="one_off", period="", currency=currency, amount=D(amount)
    )


def place(user, product, plan) -> Order:
    return orders.order_place(
        actor=user, product_id=product.pk, plan_id=plan.pk, delivery_mode="file", intended_use="Market sizing."
    )


def waiting_on_a_lock(count: int = 1, timeout: float = 30.0) -> None:
    """Return once `count` other sessions of this database wait on a lock (a row lock held by a transaction)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"no {count} session(s) waiting on a lock after {timeout} s")


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer)


# --- (a) one balance, many orders ------------------------------------------------------------------------------


def test_concurrent_orders_never_overdraw_one_cash_balance(product, international, clerk):
    # given a firm whose cash covers 3 orders of 100.00, and 8 of its people
    firm = international.membership.firm
    fund(international, clerk, "300.00")
    plan = one_off(product, "100.00")
    people = [international, *[member(firm, "trader") for _ in range(7)]]

    # when they all order at the same moment
    results, errors = together(*[lambda u=u: place(u, product, plan) for u in people])

    # then exactly 3 orders were placed and the 5 others refused for want of cash; nothing below zero
    placed = [r for r in results if r is not None]
    assert len(placed) == 3, codes(errors)
    assert codes(errors) == ["insufficient_funds"] * 5
    assert account_for(firm=firm, kind="cash", currency="CNY").balance == D("0.00")
    assert account_for(firm=firm, kind="escrow", currency="CNY").balance == D("300.00")
    assert Order.objects.filter(buyer_firm=firm).count() == 3
    assert JournalEntry.objects.filter(kind="funding").count() == 3
    assert not Account.objects.filter(firm__isnull=False, balance__lt=0).exists()
    # each order released and counted once on the exporter's counter
    assert ProductExport.objects.get(product=product).trades == 3


# --- (b) the yearly counter ------------------------------------------------------------------------------------


def pipia_and_consent(provider, officer) -> None:
    """The exporter's PIPIA and consent on file for its products as listed now, and no standard contract: an export
    is exempt while the exporter's year stays under 100,000 individuals, held from there. And the exporter's
    counter for the year exists already (it has exported this year), so that the race is on its row lock, not on
    creating it."""
    for kind in (EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD):
        filing(provider, kind, accepted_by=officer, issued_on=date(2026, 1, 5))
    with transaction.atomic():
        export_counter_lock(exporter=provider.membership.firm, year=shanghai_year(timezone.localdate()))


@pytest.fixture
def pi_buyers(international, clerk):
    """Two foreign buyers with cash."""
    jp = member(admit(MemberFirmFactory(country="JP", role="buyer"), "international"), "firm_admin")
    for buyer in (international, jp):
        fund(buyer, clerk, "1000.00")
    return international, jp


def test_two_buyers_crossing_the_threshold_at_once_are_decided_one_after_the_other(
    provider, reviewer, officer, pi_buyers
):
    # given two products of one exporter, 60,000 individuals each: one alone is exempt, both together are not
    first = with_pi(listed_product(provider, reviewer), 60_000)
    second = with_pi(listed_product(provider, reviewer), 60_000)
    pipia_and_consent(provider, officer)
    plans = one_off(first, "50.00"), one_off(second, "50.00")
    buyers = pi_buyers

    # when two buyers order one each at the same moment
    results, errors = together(
        lambda: place(buyers[0], first, plans[0]),
        lambda: place(buyers[1], second, plans[1]),
    )

    # then one is cleared and counted, and the other was decided on a counter that already held the first
    assert errors == [None, None]
    placed = sorted(results, key=lambda o: o.status != "released")
    assert [o.status for o in placed] == ["released", "compliance_hold"]
    released, held = placed
    assert released.assessment.inputs["exporter"]["ytd_personal_info_subjects"] == 0
    assert held.assessment.inputs["exporter"]["ytd_personal_info_subjects"] == 60_000
    assert held.assessment.decision == "contract_or_certification"
    counter = ExportCounter.objects.get(exporter=provider.membership.firm)
    assert counter.personal_info_subjects == 60_000
    assert list(ProductExport.objects.values_list("product_id", "trades")) == [(released.product_id, 1)]


def test_two_buyers_of_one_product_at_once_count_its_people_once(provider, reviewer, officer, pi_buyers):
    # given one product of 60,000 individuals
    product = with_pi(listed_product(provider, reviewer), 60_000)
    pipia_and_consent(provider, officer)
    plan = one_off(product, "50.00")

    # when two buyers order it at the same moment
    results, errors = together(*[lambda b=b: place(b, product, plan) for b in pi_buyers])

    # then both are cleared (the same people sent twice are one set of people) and counted once
    assert errors == [None, None] and [o.status for o in results] == ["released", "released"]
    assert ExportCounter.objects.get(exporter=provider.membership.firm).personal_info_subjects == 60_000
    assert ProductExport.objects.get(product=product).trades == 2


# --- (c) one settlement ------------------------------------------------------------------------------------------


@pytest.fixture
def accepted(product, provider, international, clerk, monkeypatch) -> Order:
    """A delivered and accepted order of 1,000.00 whose settlement has not run: the relay is not kicked after
    commits here, so that only the test's threads settle it."""
    monkeypatch.setattr("exchange.outbox._kick_relay", lambda: None)
    fund(international, clerk, "1000.00")
    order = place(international, product, one_off(product, "1000.00"))
    orders.order_confirm_delivery(order=order, actor=provider)
    return orders.order_accept(order=Order.objects.get(pk=order.pk), actor=international)


def _settled_once(order: Order, provider) -> None:
    order.refresh_from_db()
    assert order.status == "settled"
    assert JournalEntry.objects.filter(kind="settlement", charge__order=order).count() == 1
    assert account_for(firm=provider.membership.firm, kind="payable", currency="CNY").balance == D("992.00")
    assert exchange_account(kind="fee_revenue", currency="CNY").balance == D("8.00")
    assert OrderEvent.objects.filter(order=order, kind="settled").count() == 1
    assert OutboxEvent.objects.filter(topic="order.settled", key=str(order.pk)).count() == 1


def test_settling_one_order_from_several_threads_settles_it_once(accepted, provider):
    results, errors = together(*[lambda: orders.order_settle(order=Order.objects.get(pk=accepted.pk))] * 6)
    assert errors == [None] * 6
    assert {r.status for r in results} == {"settled"}
    _settled_once(accepted, provider)


def test_two_relays_and_a_direct_settlement_at_once_settle_once(accepted, provider):
    # given the order's `order.accepted` event waiting for the relay
    event = OutboxEvent.objects.get(topic="order.accepted", key=str(accepted.pk), published_at__isnull=True)

    # when two relays take the outbox and a clerk's settlement runs, all at the same moment
    results, errors = together(
        lambda: outbox_relay(),
        lambda: outbox_relay(),
        lambda: orders.order_settle(order=Order.objects.get(pk=accepted.pk)),
    )

    # then the event was delivered once, without a failure, and the order settled once
    assert errors == [None, None, None]
    assert sum(r["failed"] for r in results[:2]) == 0
    assert OutboxDelivery.objects.filter(event=event, subscriber="settlements.settle_accepted_order").count() == 1
    event.refresh_from_db()
    assert event.published_at is not None and event.last_error == ""
    _settled_once(accepted, provider)


# --- (d) four eyes, two hands ------------------------------------------------------------------------------------


def test_two_clerks_approving_then_paying_one_withdrawal_act_once(international, clerk):
    from tests.settlements.test_ledger import _another_clerk

    # given a withdrawal request of 100.00 (under the second-approval threshold)
    second = _another_clerk()
    fund(international, clerk, "500.00")
    firm = international.membership.firm
    request = withdrawals.withdrawal_request(
        firm=firm, currency="CNY", amount=D("100.00"), bank_account="DBS 1", actor=international
    )

    def fresh() -> Withdrawal:
        return Withdrawal.objects.get(pk=request.pk)

    # when both clerks approve it at the same moment, each from the page they loaded
    pages = [fresh(), fresh()]
    _results, errors = together(
        lambda: withdrawals.withdrawal_approve(withdrawal=pages[0], actor=clerk),
        lambda: withdrawals.withdrawal_approve(withdrawal=pages[1], actor=second),
    )
    # then one approval stands and the other clerk is told the withdrawal changed meanwhile
    assert codes(errors) == ["stale_state"]
    assert fresh().status == "approved"

    # when both record the bank's payment at the same moment
    pages = [fresh(), fresh()]
    _results, errors = together(
        lambda: withdrawals.withdrawal_pay(withdrawal=pages[0], actor=clerk, bank_reference="OUT-1"),
        lambda: withdrawals.withdrawal_pay(withdrawal=pages[1], actor=second, bank_reference="OUT-2"),
    )
    # then it is paid once: one entry, the bank down by 100.00 once, one event
    assert codes(errors) == ["stale_state"]
    assert fresh().status == "paid"
    assert JournalEntry.objects.filter(kind="withdrawal_paid").count() == 1
    assert exchange_account(kind="bank_clearing", currency="CNY").balance == D("400.00")
    assert account_for(firm=firm, kind="withdrawal", currency="CNY").balance == D("0.00")
    assert OutboxEvent.objects.filter(topic="withdrawal.paid").count() == 1


def test_a_payment_and_a_rejection_at_once_do_one_of_the_two(international, clerk):
    from tests.settlements.test_ledger import _another_clerk

    second = _another_clerk()
    fund(international, clerk, "500.00")
    firm = international.membership.firm
    request = withdrawals.withdrawal_request(
        firm=firm, currency="CNY", amount=D("100.00"), bank_account="DBS 1", actor=international
    )
    withdrawals.withdrawal_approve(withdrawal=request, actor=clerk)
    pages = [Withdrawal.objects.get(pk=request.pk) for _ in range(2)]
    _results, errors = together(
        lambda: withdrawals.withdrawal_pay(withdrawal=pages[0], actor=clerk, bank_reference="OUT-1"),
        lambda: withdrawals.withdrawal_reject(withdrawal=pages[1], actor=second, reason="Wrong account."),
    )
    assert codes(errors) == ["stale_state"]
    status = Withdrawal.objects.get(pk=request.pk).status
    cash = account_for(firm=firm, kind="cash", currency="CNY").balance
    # paid: the money left; rejected: it is back on the firm's cash. Never both.
    assert (status, cash) in {("paid", D("400.00")), ("rejected", D("500.00"))}
    assert JournalEntry.objects.filter(kind__in=["withdrawal_paid", "withdrawal_return"]).count() == 1


# --- (e) a suspension racing orders --------------------------------------------------------------------------------


_gates: list[Gate] = []


@pytest.fixture(autouse=True)
def _open_the_gates() -> Iterator[None]:
    # A test failing while a thread waits at a gate still lets it go, so that its transaction ends before the
    # tables are flushed.
    yield
    for gate in _gates:
        gate.open.set()
    _gates.clear()


class Gate:
    """Holds one thread inside a function until the test opens it (the first call only)."""

    def __init__(self, original: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True) -> None:
        self.original, self.when = original, when
        self.inside, self.open = threading.Event(), threading.Event()
        self.used = False
        _gates.append(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.used and self.when(*args, **kwargs):
            self.used = True
            self.inside.set()
            assert self.open.wait(timeout=60)
        return self.original(*args, **kwargs)


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:  # asserted on
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_suspension_waits_for_the_order_in_flight(product, international, clerk, reviewer, monkeypatch):
    # given an order in flight: past its checks (the product share-locked), held before the compliance gate
    fund(international, clerk, "1000.00")
    plan = one_off(product, "100.00")
    gate = Gate(orders.trade_decide)
    monkeypatch.setattr(orders, "trade_decide", gate)
    buying, bought = _in_thread(lambda: place(international, product, plan))
    assert gate.inside.wait(timeout=30)

    # when a reviewer suspends the product meanwhile
    suspending, suspended = _in_thread(
        lambda: listing_services.product_suspend(product=product, actor=reviewer, reason="Complaint.")
    )
    # then the suspension waits for the order's transaction
    waiting_on_a_lock()
    assert suspending.is_alive()
    gate.open.set()
    buying.join(timeout=30), suspending.join(timeout=30)

    # and the order committed before the suspension, which then took effect: the next order is refused
    assert "error" not in bought and "error" not in suspended, (bought, suspended)
    assert bought["result"].status == "released"
    with pytest.raises(ApplicationError) as refused:
        place(international, product, plan)
    assert refused.value.code == "suspended"
    assert Order.objects.count() == 1


def test_an_order_waits_for_the_suspension_in_flight_and_is_refused(
    product, international, clerk, reviewer, monkeypatch
):
    # given a suspension in flight: the product's row updated, its transaction not yet committed
    fund(international, clerk, "1000.00")
    plan = one_off(product, "100.00")
    import exchange.transitions

    gate = Gate(exchange.transitions.audit_record, when=lambda **kw: kw.get("verb") == "listing.suspended")
    monkeypatch.setattr(exchange.transitions, "audit_record", gate)
    suspending, suspended = _in_thread(
        lambda: listing_services.product_suspend(product=product, actor=reviewer, reason="Complaint.")
    )
    assert gate.inside.wait(timeout=30)

    # when a buyer orders meanwhile
    buying, bought = _in_thread(lambda: place(international, product, plan))
    # then the order waits for the suspension (it share-locks the product) and, once it commits, is refused:
    # it never reads the product as still listed from before the suspension
    waiting_on_a_lock()
    gate.open.set()
    suspending.join(timeout=30), buying.join(timeout=30)
    assert "error" not in suspended, suspended
    assert getattr(bought.get("error"), "code", bought) == "suspended"
    assert not Order.objects.exists()
    assert account_for(firm=international.membership.firm, kind="cash", currency="CNY").balance == D("1000.00")


def test_orders_racing_a_suspension_never_commit_after_it(product, international, clerk, reviewer):
    # given a buyer's people with cash for every order
    firm = international.membership.firm
    fund(international, clerk, "10000.00")
    plan = one_off(product, "100.00")
    people = [international, *[member(firm, "trader") for _ in range(5)]]
    suspended_at: list[float] = []
    started: dict[int, float] = {}

    def suspend() -> Any:
        done = listing_services.product_suspend(product=product, actor=reviewer, reason="Complaint.")
        suspended_at.append(time.monotonic())  # committed by now
        return done

    def buy(i: int, user) -> Order:
        time.sleep(0.01 * i)  # spread over the suspension: some before, some during, some after it
        started[i] = time.monotonic()
        return place(user, product, plan)

    # when six orders and a suspension run at once
    results, errors = together(suspend, *[lambda i=i, u=u: buy(i, u) for i, u in enumerate(people)])

    # then every order refused was refused as suspended, and no order that began after the suspension had
    # committed went through
    assert errors[0] is None
    assert set(codes(errors)) <= {"suspended"}
    for i, (result, error) in enumerate(zip(results[1:], errors[1:], strict=True)):
        if started[i] > suspended_at[0]:
            assert result is None and getattr(error, "code", None) == "suspended", i
    placed = [r for r in results[1:] if r is not None]
    assert Order.objects.count() == len(placed)
    # and the suspension, relayed after its commit, ended what the orders placed before it bought: released and not
    # delivered, each was refunded whole (settlements.services.orders.order_entitlement_lost)
    assert set(Order.objects.values_list("status", flat=True)) <= {"refunded"}
    assert set(Entitlement.objects.values_list("end_reason", flat=True)) <= {"suspended"}
    assert Entitlement.objects.count() == len(placed)
    assert account_for(firm=firm, kind="escrow", currency="CNY").balance == D("0.00")
    assert account_for(firm=firm, kind="cash", currency="CNY").balance == D("10000.00")


# --- (f) two entries in one transaction ---------------------------------------------------------------------------


def test_a_partial_refund_and_a_settlement_of_the_same_buyer_at_once_do_not_deadlock(
    product, provider, international, clerk, monkeypatch
):
    # given the exchange's fee revenue account opened before the buyer's (as it is, once the first order settled),
    # and two delivered orders of one buyer, the second accepted and waiting for its settlement
    monkeypatch.setattr("exchange.outbox._kick_relay", lambda: None)
    exchange_account(kind="fee_revenue", currency="CNY")
    fund(international, clerk, "5000.00")
    plan = one_off(product, "1000.00")
    refunded, settling = place(international, product, plan), place(international, product, plan)
    for order in (refunded, settling):
        orders.order_confirm_delivery(order=order, actor=provider)
    orders.order_accept(order=Order.objects.get(pk=settling.pk), actor=international)
    account_for(firm=provider.membership.firm, kind="payable", currency="CNY")

    # when a clerk refunds part of the first (its refund entry posted, its settlement entry next) while the second
    # settles
    gate = Gate(orders.entry_post, when=lambda **kw: kw["kind"] == "settlement")
    monkeypatch.setattr(orders, "entry_post", gate)
    refunding, refund = _in_thread(
        lambda: orders.order_refund(order=refunded, actor=clerk, reason="Half delivered.", amount=D("400.00"))
    )
    assert gate.inside.wait(timeout=30)
    settlement_thread, settlement = _in_thread(lambda: orders.order_settle(order=Order.objects.get(pk=settling.pk)))
    waiting_on_a_lock()
    gate.open.set()
    refunding.join(timeout=30), settlement_thread.join(timeout=30)

    # then both complete: the accounts are locked in one order by both, so neither waits for the other in a circle
    assert "error" not in refund and "error" not in settlement, (refund, settlement)
    assert Order.objects.get(pk=refunded.pk).status == "refunded"
    assert Order.objects.get(pk=settling.pk).status == "settled"


def test_a_held_order_refused_on_its_recheck_while_its_buyer_orders_again_do_not_deadlock(
    provider, reviewer, officer, clerk, superuser, monkeypatch
):
    from compliance import services as compliance
    from listings.models import Revision
    from tests.factories import RevisionFactory

    # given a Hong Kong buyer's order of US-origin data, held for the officer's review, and the case cleared; the
    # product lists a new revision before the relay rechecks the order (so the recheck refuses it)
    monkeypatch.setattr("exchange.outbox._kick_relay", lambda: None)
    us = listed_product(provider, reviewer)
    Revision.objects.filter(pk=us.listed_revision_id).update(origin_countries=["US"])
    plain = listed_product(provider, reviewer)
    hk = member(
        admit(MemberFirmFactory(country="HK", role="buyer", legal_name_en="Harbour Data Ltd."), "international"),
        "firm_admin",
    )
    fund(hk, clerk, "1000.00")
    held = place(hk, us, one_off(us, "100.00"))
    assert held.status == "compliance_hold"
    compliance.case_clear(case=held.case, actor=officer, resolution="Not covered data.")
    newer = RevisionFactory(product=us, number=2, created_by=provider, reviewer=reviewer, origin_countries=["US"])
    type(us).objects.filter(pk=us.pk).update(listed_revision=newer)
    plan = one_off(plain, "100.00")

    # when the relay's recheck has decided (the exporter's counter locked) and is about to return the escrow, while
    # the buyer orders another product of the same exporter (its accounts locked, the counter next)
    gate = Gate(orders._refuse)
    monkeypatch.setattr(orders, "_refuse", gate)
    relaying, relayed = _in_thread(lambda: outbox_relay())
    assert gate.inside.wait(timeout=30)
    buying, bought = _in_thread(lambda: place(hk, plain, plan))
    waiting_on_a_lock()
    gate.open.set()
    relaying.join(timeout=30), buying.join(timeout=30)

    # then neither waits for the other in a circle: the held order is refused with its escrow returned, and the
    # new order is placed, no deadlock on the way
    assert relayed.get("result", {}).get("failed") == 0, relayed
    assert bought.get("error") is None, bought
    assert Order.objects.get(pk=held.pk).status == "refused"
    assert account_for(firm=hk.membership.firm, kind="cash", currency="CNY").balance == D("900.00")


def test_a_cancellation_and_a_new_order_of_the_same_buyer_at_once_do_not_deadlock(
    product, international, clerk, monkeypatch
):
    # given an order the buyer is cancelling: its status moved and audited, its escrow about to be returned
    fund(international, clerk, "1000.00")
    plan = one_off(product, "100.00")
    first = place(international, product, plan)
    gate = Gate(orders._return_all)
    monkeypatch.setattr(orders, "_return_all", gate)
    cancelling, cancelled = _in_thread(lambda: orders.order_cancel(order=first, actor=international))
    assert gate.inside.wait(timeout=30)

    # when the buyer places another order meanwhile (its accounts locked first, its audit row last)
    buying, bought = _in_thread(lambda: place(international, product, plan))
    waiting_on_a_lock()
    gate.open.set()
    cancelling.join(timeout=30), buying.join(timeout=30)

    # then both complete, one after the other
    assert "error" not in cancelled and "error" not in bought, (cancelled, bought)
    assert Order.objects.get(pk=first.pk).status == "cancelled"
    assert bought["result"].status == "released"
    assert account_for(firm=international.membership.firm, kind="cash", currency="CNY").balance == D("900.00")


def test_a_rejected_withdrawal_and_a_new_request_of_the_same_firm_at_once_do_not_deadlock(
    international, clerk, monkeypatch
):
    from settlements.services import withdrawals as withdrawal_services

    # given a withdrawal a clerk is rejecting: its status moved and audited, its amount about to return to cash
    fund(international, clerk, "1000.00")
    firm = international.membership.firm
    first = withdrawal_services.withdrawal_request(
        firm=firm, currency="CNY", amount=D("100.00"), bank_account="DBS 1", actor=international
    )
    gate = Gate(withdrawal_services._return_to_cash)
    monkeypatch.setattr(withdrawal_services, "_return_to_cash", gate)
    rejecting, rejected = _in_thread(
        lambda: withdrawal_services.withdrawal_reject(withdrawal=first, actor=clerk, reason="Wrong account.")
    )
    assert gate.inside.wait(timeout=30)

    # when the firm asks for another withdrawal meanwhile (its cash locked first, its audit row last)
    asking, asked = _in_thread(
        lambda: withdrawal_services.withdrawal_request(
            firm=firm, currency="CNY", amount=D("200.00"), bank_account="DBS 1", actor=international
        )
    )
    waiting_on_a_lock()
    gate.open.set()
    rejecting.join(timeout=30), asking.join(timeout=30)

    # then both complete
    assert "error" not in rejected and "error" not in asked, (rejected, asked)
    assert account_for(firm=firm, kind="cash", currency="CNY").balance == D("800.00")


def test_a_bank_statement_import_and_an_order_of_a_firm_it_credits_at_once_do_not_deadlock(
    product, international, domestic, clerk, monkeypatch
):
    from settlements.services import deposits

    # given a statement crediting two firms, its import past the first line (audited) and about to book the second
    fund(international, clerk, "1000.00")
    fund(domestic, clerk, "1.00")
    plan = one_off(product, "100.00")
    sg, cn = international.membership.firm, domestic.membership.firm
    content = (
        "value_date,bank_reference,payment_reference,currency,amount\n"
        f"2026-06-02,S-1,{cn.uscc},CNY,10.00\n"
        f"2026-06-02,S-2,{sg.lei},CNY,20.00\n"
    ).encode()
    gate = Gate(deposits.deposit_book, when=lambda **kw: kw["firm"].pk == sg.pk)
    monkeypatch.setattr(deposits, "deposit_book", gate)
    importing, imported = _in_thread(
        lambda: deposits.statement_import(file_name="june.csv", content=content, actor=clerk)
    )
    assert gate.inside.wait(timeout=30)

    # when the second firm places an order meanwhile
    buying, bought = _in_thread(lambda: place(international, product, plan))
    waiting_on_a_lock()
    gate.open.set()
    importing.join(timeout=30), buying.join(timeout=30)

    # then both complete: the import booked both lines, the order its escrow
    assert "error" not in imported and "error" not in bought, (imported, bought)
    assert imported["result"].booked == 2
    assert account_for(firm=sg, kind="cash", currency="CNY").balance == D("920.00")
