"""The meter of data calls: counted in the cache, written to the period's usage row in batches, refused at the
period's limit (the included calls of a quota; what a metered plan's usage budget pays, fees included), and charged
from the budget once at the period's end, the rest returned. The package's fixture checks the ledger after each
test."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import close_old_connections, connection
from django.test import override_settings
from django.utils import timezone

from exchange.exceptions import ApplicationError
from listings.models import Revision
from settlements.models import Charge, FeeSchedule, Usage
from settlements.services import metering, orders
from settlements.services.ledger import account_for
from tests.factories import PricePlanFactory, listed_product
from tests.settlements.factories import fund
from tests.settlements.test_orders import place

pytestmark = pytest.mark.django_db
D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def fresh_meter():
    metering.meter_cache().clear()
    yield
    metering.meter_cache().clear()


@pytest.fixture
def product(provider, reviewer):
    product = listed_product(provider, reviewer)
    Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["file", "api"])
    product.refresh_from_db()
    return product


def balance(user, kind="cash") -> Decimal:
    return account_for(firm=user.membership.firm, kind=kind, currency="CNY").balance


def metered_order(product, buyer, *, included=10, unit="0.50", budget="10.00", base="100.00"):
    plan = PricePlanFactory(
        product=product,
        kind="metered",
        period="month",
        currency="CNY",
        amount=D(base),
        included_calls=included,
        unit_price=D(unit),
    )
    return place(buyer, product, plan, usage_budget=D(budget), delivery_mode="api")


def calls(entitlement, n: int) -> list[metering.MeterTicket]:
    return [metering.meter_call(entitlement) for _ in range(n)]


def refused(entitlement) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        metering.meter_call(entitlement)
    assert caught.value.status_code == 429
    return caught.value


class TestLimits:
    def test_a_metered_period_takes_the_included_calls_then_what_the_budget_pays(self, product, international, clerk):
        fund(international, clerk)
        entitlement = metered_order(product, international).entitlement
        usage = metering.usage_current(entitlement)
        # 10 included, then 0.50 a call from a 10.00 budget with no buyer's fee: 20 more
        assert (usage.calls_included, usage.unit_price, usage.call_limit) == (10, D("0.50"), 30)
        calls(entitlement, 30)
        error = refused(entitlement)
        assert error.code == "usage_budget_exhausted" and error.details["call_limit"] == 30
        assert metering.usage_calls(usage) == 30  # the refused call is not counted

    def test_the_buyers_fee_comes_out_of_the_budget_too(self, product, international, clerk):
        # a buyer's fee of 10 % plus 1.00 on each priced charge: 20 calls (10.00) would cost 12.00
        FeeSchedule.objects.create(
            board=product.board,
            currency="CNY",
            effective_from=timezone.localdate(),
            provider_rate_bps=80,
            buyer_rate_bps=1000,
            buyer_fixed=D("1.00"),
        )
        fund(international, clerk)
        entitlement = metered_order(product, international).entitlement
        usage = metering.usage_current(entitlement)
        # 16 calls: 8.00 + 0.80 + 1.00 = 9.80 <= 10.00; 17 calls: 8.50 + 0.85 + 1.00 = 10.35 > 10.00
        assert usage.call_limit == 10 + 16

    def test_a_quota_without_a_unit_price_refuses_beyond_the_included_calls(self, product, international, clerk):
        fund(international, clerk)
        plan = PricePlanFactory(
            product=product, kind="subscription", period="month", currency="CNY", amount=D("50"), included_calls=3
        )
        entitlement = place(international, product, plan, delivery_mode="api").entitlement
        calls(entitlement, 3)
        assert refused(entitlement).code == "quota_exhausted"

    def test_a_plan_without_included_calls_has_no_limit(self, product, international, clerk):
        fund(international, clerk)
        plan = PricePlanFactory(product=product, kind="subscription", period="month", currency="CNY", amount=D("50"))
        entitlement = place(international, product, plan, delivery_mode="api").entitlement
        calls(entitlement, 50)
        assert metering.usage_current(entitlement).call_limit is None

    def test_an_undone_call_is_not_counted(self, product, international, clerk):
        fund(international, clerk)
        entitlement = metered_order(product, international, budget="0.50").entitlement
        tickets = calls(entitlement, 11)
        refused(entitlement)
        metering.meter_undo(tickets[-1])
        metering.meter_call(entitlement)  # the undone call's place is free again
        refused(entitlement)


class TestCheckpoints:
    @override_settings(SETTLEMENT_METER_CHECKPOINT_CALLS=10)
    def test_calls_reach_the_database_in_batches_and_survive_a_lost_cache(self, product, international, clerk):
        fund(international, clerk)
        entitlement = metered_order(product, international, budget="100.00").entitlement
        calls(entitlement, 25)
        usage = Usage.objects.get(entitlement=entitlement)
        assert usage.calls == 20  # written by the 10th and the 20th call only
        assert metering.usage_calls(usage) == 25
        assert metering.meters_checkpoint() == 1
        usage.refresh_from_db()
        assert usage.calls == 25 and usage.checkpointed_at
        assert metering.meters_checkpoint() == 0  # nothing new: no write
        # the cache restarts empty: counting goes on from the checkpoint
        metering.meter_cache().clear()
        assert metering.meter_call(entitlement).count == 26

    def test_the_embedded_default_writes_every_call(self, product, international, clerk, settings):
        assert settings.SETTLEMENT_METER_CHECKPOINT_CALLS == 1  # no CACHE_URL in the tests
        fund(international, clerk)
        entitlement = metered_order(product, international).entitlement
        calls(entitlement, 3)
        assert Usage.objects.get(entitlement=entitlement).calls == 3


class TestCharging:
    def test_the_period_end_charges_the_usage_and_returns_the_rest(self, product, provider, international, clerk):
        fund(international, clerk, "1000.00")
        order = metered_order(product, international, budget="10.00")
        entitlement = order.entitlement
        calls(entitlement, 17)  # 7 beyond the 10 included: 3.50
        budget = order.charges.get(kind="usage_budget")
        assert orders.usage_budgets_close_due(today=budget.period_end) == []
        assert orders.usage_budgets_close_due(today=budget.period_end + timedelta(days=1)) == [budget.pk]
        budget.refresh_from_db()
        usage = Usage.objects.get(entitlement=entitlement)
        assert (usage.calls, usage.charged, usage.charge_id) == (17, D("3.50"), budget.pk) and usage.closed_at
        # 3.50 of usage: 0.8 % (0.03) to the exchange, 3.47 to the provider, 6.50 back to the buyer
        assert (budget.status, budget.refunded, budget.provider_net, budget.fee_collected) == (
            "settled",
            D("6.50"),
            D("3.47"),
            D("0.03"),
        )
        assert balance(international) == D("1000.00") - D("100.00") - D("3.50")
        assert balance(provider, "payable") == D("3.47")
        assert order.events.filter(kind="usage_charged").count() == 1
        # run twice: nothing more moves
        assert orders.usage_budgets_close_due(today=budget.period_end + timedelta(days=2)) == []
        assert balance(international) == D("896.50")

    def test_a_period_within_the_included_calls_returns_the_whole_budget(self, product, international, clerk):
        fund(international, clerk, "1000.00")
        order = metered_order(product, international, budget="10.00")
        calls(order.entitlement, 10)
        budget = order.charges.get(kind="usage_budget")
        orders.usage_budget_close(charge=budget)
        budget.refresh_from_db()
        assert (budget.status, budget.refunded) == ("refunded", D("10.00"))
        assert Usage.objects.get(entitlement=order.entitlement).charged == D("0.00")

    def test_a_disputed_orders_budget_waits(self, product, provider, international, clerk):
        fund(international, clerk, "1000.00")
        order = metered_order(product, international)
        calls(order.entitlement, 12)
        orders.order_confirm_delivery(order=order, actor=provider)
        orders.order_dispute(order=order, actor=international, reason="The rows stop in March.")
        budget = order.charges.get(kind="usage_budget")
        assert orders.usage_budget_close(charge=budget).status == "held"

    def test_calls_after_the_close_are_refused(self, product, international, clerk):
        fund(international, clerk, "1000.00")
        order = metered_order(product, international)
        calls(order.entitlement, 1)
        orders.usage_budget_close(charge=order.charges.get(kind="usage_budget"))
        assert refused(order.entitlement).code == "usage_budget_exhausted"

    def test_a_refunded_orders_usage_period_closes_without_money(self, product, international, clerk):
        fund(international, clerk, "1000.00")
        order = metered_order(product, international)
        calls(order.entitlement, 12)
        orders.order_refund(order=order, actor=clerk, reason="Wrong product.")
        usage = Usage.objects.get(entitlement=order.entitlement)
        assert orders.usage_periods_close_due(today=usage.period_end + timedelta(days=1)) == 1
        usage.refresh_from_db()
        assert usage.closed_at and usage.calls == 12 and usage.charge is None
        assert balance(international) == D("1000.00")


@time_machine.travel(datetime(2027, 3, 31, 23, 59, 50, tzinfo=SHANGHAI), tick=False)
def test_a_quota_counts_afresh_in_the_next_period_in_shanghai(product, international, clerk):
    fund(international, clerk, "1000.00")
    plan = PricePlanFactory(
        product=product, kind="subscription", period="month", currency="CNY", amount=D("50"), included_calls=2
    )
    entitlement = place(international, product, plan, delivery_mode="api").entitlement
    calls(entitlement, 2)
    assert refused(entitlement).code == "quota_exhausted"
    # the period runs 31 March to 30 April: on 30 April, still refused; on 1 May (renewed) the calls are new
    with time_machine.travel(datetime(2027, 4, 30, 23, 0, tzinfo=SHANGHAI), tick=False):
        assert refused(entitlement).code == "quota_exhausted"
    with time_machine.travel(datetime(2027, 5, 1, 0, 5, tzinfo=SHANGHAI), tick=False):
        orders.order_confirm_delivery(
            order=entitlement.order, actor=entitlement.product.provider.memberships.first().user
        )
        orders.subscriptions_renew_due()
        entitlement.refresh_from_db()
        calls(entitlement, 2)
        assert refused(entitlement).code == "quota_exhausted"
        assert list(Usage.objects.filter(entitlement=entitlement).values_list("period_start", "calls")) == [
            (date(2027, 5, 1), 2),
            (date(2027, 3, 31), 2),
        ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="real concurrent connections need PostgreSQL")
def test_concurrent_calls_never_pass_the_limit(provider, reviewer, international, clerk):
    product = listed_product(provider, reviewer)
    Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["file", "api"])
    fund(international, clerk, "1000.00")
    entitlement = metered_order(product, international, included=5, unit="1.00", budget="10.00").entitlement
    metering.usage_current(entitlement)  # the row exists: the race is on the counter
    barrier, answers, lock = threading.Barrier(8), [], threading.Lock()

    def caller() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                try:
                    metering.meter_call(entitlement)
                    outcome = "counted"
                except ApplicationError as exc:
                    outcome = exc.code
                with lock:
                    answers.append(outcome)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count("counted") == 15 and answers.count("usage_budget_exhausted") == 25
    assert Usage.objects.get(entitlement=entitlement).calls == 15
    assert connection.vendor == "postgresql"


def test_every_charge_of_a_metered_order_is_accounted_for(product, international, clerk):
    fund(international, clerk, "1000.00")
    order = metered_order(product, international)
    calls(order.entitlement, 30)
    orders.usage_budget_close(charge=order.charges.get(kind="usage_budget"))
    budget = Charge.objects.get(order=order, kind="usage_budget")
    assert budget.refunded + budget.provider_net + budget.fee_collected == budget.total
    assert budget.provider_net + budget.fee_collected == D("10.00")  # the whole budget: 20 calls at 0.50
