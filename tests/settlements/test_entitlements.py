"""Entitlements through the services: started with the release, with the term the plan and licence give, and ended,
for good and once, on each of the ways the issue names (cancellation, refund, the term's end, suspension, delisting, a
filing revoked, staff). The package's fixture checks the ledger's and the entitlements' invariants after each test."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from compliance import services as compliance
from compliance.models import EvidenceKind
from exchange.exceptions import InvalidTransition, NotAllowed
from exchange.models import AuditEvent
from exchange.outbox import OutboxEvent, outbox_relay
from listings import services as listing_services
from listings.models import Revision
from settlements.models import Entitlement
from settlements.selectors import entitlement_usable
from settlements.services import entitlements, orders
from tests.compliance.factories import filing, with_pi
from tests.factories import PricePlanFactory, listed_product
from tests.settlements.factories import fund
from tests.settlements.test_orders import one_off, place

pytestmark = pytest.mark.django_db
D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer)


def file_all_evidence(provider, officer) -> list:
    """What an export of 150,000 people's data needs on file, accepted: the contract (with its receipt), the PIPIA
    report and the consent record."""
    return [
        filing(provider, kind, accepted_by=officer, receipt_reference="SH-2026-1", receipt_filed_on=date(2026, 1, 9))
        for kind in (EvidenceKind.STANDARD_CONTRACT, EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD)
    ]


def balance_of(user, kind="cash") -> Decimal:
    from settlements.services.ledger import account_for

    return account_for(firm=user.membership.firm, kind=kind, currency="CNY").balance


def ended_events(entitlement) -> list[dict]:
    return list(
        OutboxEvent.objects.filter(topic="entitlement.ended", key=str(entitlement.pk)).values_list("payload", flat=True)
    )


class TestStart:
    def test_a_released_order_has_its_entitlement_with_the_licence_term(self, product, international, clerk):
        Revision.objects.filter(pk=product.listed_revision_id).update(
            licence_terms={**product.listed_revision.licence_terms, "duration_months": 12}
        )
        fund(international, clerk)
        order = place(international, product, one_off(product))
        entitlement = order.entitlement
        assert entitlement.status == "active" and entitlement.buyer_firm_id == order.buyer_firm_id
        assert entitlement.revision_id == order.revision_id and entitlement.delivery_mode == "file"
        assert entitlement.starts_at == order.released_at and not entitlement.follows_revisions
        assert entitlement.ends_at is not None
        assert timezone.localtime(entitlement.ends_at).date() == timezone.localtime(order.released_at).date().replace(
            year=timezone.localtime(order.released_at).year + 1
        )
        assert entitlement_usable(entitlement)
        started = OutboxEvent.objects.get(topic="entitlement.started", key=str(entitlement.pk))
        assert started.payload["order"] == order.pk
        # the release's audit row records it: no row of its own on the order's hot path
        released = AuditEvent.objects.get(verb="settlements.order_released", object_id=str(order.pk))
        assert released.payload["entitlement"] == entitlement.pk

    def test_a_licence_without_an_end_gives_an_entitlement_without_one(self, product, international, clerk):
        Revision.objects.filter(pk=product.listed_revision_id).update(
            licence_terms={**product.listed_revision.licence_terms, "duration_months": None}
        )
        fund(international, clerk)
        assert place(international, product, one_off(product)).entitlement.ends_at is None

    @time_machine.travel(datetime(2027, 1, 31, 23, 30, tzinfo=SHANGHAI), tick=False)
    def test_a_subscription_lasts_its_paid_period_in_shanghai_and_follows_revisions(
        self, product, international, clerk
    ):
        fund(international, clerk)
        plan = PricePlanFactory(product=product, kind="subscription", period="month", currency="CNY", amount=D("50"))
        entitlement = place(international, product, plan).entitlement
        # from 31 January (15:30 UTC: already the 31st in Shanghai): the period runs to 27 February, the day before
        # the same day next month (no 31 February), so the right ends at midnight on 28 February, Shanghai time
        assert entitlement.ends_at == datetime(2027, 2, 28, tzinfo=SHANGHAI)
        assert entitlement.follows_revisions

    def test_api_delivery_carries_the_plans_included_calls(self, product, international, clerk):
        fund(international, clerk)
        plan = PricePlanFactory(
            product=product,
            kind="metered",
            period="month",
            currency="CNY",
            amount=D("100.00"),
            included_calls=1000,
            unit_price=D("0.0125"),
        )
        Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["file", "api"])
        entitlement = place(international, product, plan, usage_budget=D("50.00"), delivery_mode="api").entitlement
        assert entitlement.calls_included == 1000 and entitlement.delivery_mode == "api"

    def test_a_held_order_has_none_until_it_is_released(self, provider, reviewer, international, clerk, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        fund(international, clerk)
        order = place(international, product, one_off(product))
        assert order.status == "compliance_hold" and not Entitlement.objects.exists()
        file_all_evidence(provider, officer)
        outbox_relay()
        order.refresh_from_db()
        assert order.status == "released" and order.entitlement.starts_at == order.released_at


class TestEnd:
    def test_cancelling_a_released_order_ends_it(self, product, international, clerk):
        fund(international, clerk)
        order = place(international, product, one_off(product))
        orders.order_cancel(order=order, actor=international, reason="Bought the wrong one.")
        entitlement = Entitlement.objects.get(order=order)
        assert entitlement.status == "ended" and entitlement.end_reason == "cancelled"
        assert entitlement.ended_at is not None and entitlement.end_note == "Bought the wrong one."
        assert not entitlement_usable(entitlement)
        assert [e["reason"] for e in ended_events(entitlement)] == ["cancelled"]
        assert (
            AuditEvent.objects.filter(verb="settlements.entitlement_ended", object_id=str(entitlement.pk)).count() == 1
        )

    def test_a_refund_ends_it(self, product, international, clerk):
        fund(international, clerk)
        order = place(international, product, one_off(product))
        orders.order_refund(order=order, actor=clerk, reason="Provider cannot deliver.", amount=D("100.00"))
        assert Entitlement.objects.get(order=order).end_reason == "refunded"

    def test_suspension_ends_every_entitlement_once_and_refunds_what_was_not_delivered(
        self, product, international, clerk, reviewer, provider
    ):
        fund(international, clerk, "5000.00")
        first = place(international, product, one_off(product)).entitlement
        second = place(international, product, one_off(product)).entitlement
        orders.order_confirm_delivery(order=second.order, actor=provider)  # the second was delivered
        listing_services.product_suspend(product=product, actor=reviewer, reason="Complaint under review.")
        # the access check refuses at once, before the relay has run
        first.product.refresh_from_db()
        assert first.status == "active" and not entitlement_usable(first)
        outbox_relay()
        outbox_relay()
        for entitlement in (first, second):
            entitlement.refresh_from_db()
            assert entitlement.end_reason == "suspended" and len(ended_events(entitlement)) == 1
        # the undelivered order's money goes back; the delivered one is the buyer's to accept or dispute
        first.order.refresh_from_db()
        second.order.refresh_from_db()
        assert first.order.status == "refunded" and second.order.status == "delivered"
        assert balance_of(international) == D("4000.00") and balance_of(international, "escrow") == D("1000.00")
        # reinstated, the product sells again, but what ended stays ended, and delivering it is refused
        listing_services.product_reinstate(product=product, actor=reviewer, reason="Complaint withdrawn.")
        outbox_relay()
        first.refresh_from_db()
        assert first.status == "ended"

    def test_confirming_delivery_after_the_entitlement_ended_is_refused(self, product, international, clerk, provider):
        fund(international, clerk)
        entitlement = place(international, product, one_off(product)).entitlement
        Entitlement.objects.filter(pk=entitlement.pk).update(
            status="ended", ended_at=timezone.now(), end_reason="revoked"
        )
        with pytest.raises(InvalidTransition) as refused:
            orders.order_confirm_delivery(order=entitlement.order, actor=provider)
        assert refused.value.code == "entitlement_ended"

    def test_delisting_ends_them(self, product, international, clerk, provider):
        fund(international, clerk)
        entitlement = place(international, product, one_off(product)).entitlement
        listing_services.product_delist(product=product, actor=provider, reason="No longer maintained.")
        outbox_relay()
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "delisted"

    def test_a_revoked_filing_ends_the_exports_it_supported(self, provider, reviewer, international, clerk, officer):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        files = file_all_evidence(provider, officer)
        fund(international, clerk)
        order = place(international, product, one_off(product))
        assert order.status == "released"
        compliance.filing_revoke(filing=files[0], actor=officer, reason="The contract was terminated.")
        outbox_relay()
        entitlement = Entitlement.objects.get(order=order)
        assert entitlement.status == "ended" and entitlement.end_reason == "compliance"

    def test_a_revoked_filing_leaves_what_needs_no_export(
        self, provider, reviewer, domestic, international, clerk, officer
    ):
        # a mainland buyer: no data leaves the country, the filing was never relied on
        product = with_pi(listed_product(provider, reviewer, "domestic"), 150_000)
        contract = filing(
            provider,
            EvidenceKind.STANDARD_CONTRACT,
            accepted_by=officer,
            receipt_reference="SH-2026-1",
            receipt_filed_on=date(2026, 1, 9),
        )
        fund(domestic, clerk)
        order = place(domestic, product, one_off(product))
        compliance.filing_revoke(filing=contract, actor=officer, reason="Terminated.")
        outbox_relay()
        assert Entitlement.objects.get(order=order).status == "active"

    def test_the_term_runs_out_and_the_task_run_twice_ends_it_once(self, product, international, clerk):
        Revision.objects.filter(pk=product.listed_revision_id).update(
            licence_terms={**product.listed_revision.licence_terms, "duration_months": 1}
        )
        fund(international, clerk)
        entitlement = place(international, product, one_off(product)).entitlement
        assert entitlements.entitlements_end_due() == []
        later = entitlement.ends_at + timedelta(seconds=1)
        assert not entitlement.usable_at(later) and entitlement.usable_at(entitlement.ends_at - timedelta(seconds=1))
        assert entitlements.entitlements_end_due(now=later) == [entitlement.pk]
        assert entitlements.entitlements_end_due(now=later) == []
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "expired" and len(ended_events(entitlement)) == 1


# A month's subscription bought at 23:30 on 31 January 2027 in Shanghai (15:30 UTC): its first period runs to 27
# February, so it is paid to midnight on 28 February, Shanghai time; the renewal then charges 28 February to 27 March.
# The provider delivers it the next day (a subscription renews once delivered).
BOUGHT = datetime(2027, 1, 31, 23, 30, tzinfo=SHANGHAI)
FIRST_END = datetime(2027, 2, 28, tzinfo=SHANGHAI)


def subscribe(product, buyer, clerk, cash="100000.00", amount="50.00", delivered=True):
    fund(buyer, clerk, cash)
    plan = PricePlanFactory(product=product, kind="subscription", period="month", currency="CNY", amount=D(amount))
    with time_machine.travel(BOUGHT, tick=False):
        entitlement = place(buyer, product, plan).entitlement
    if delivered:
        provider = entitlement.order.provider_firm.memberships.get(role="firm_admin").user
        with time_machine.travel(BOUGHT + timedelta(days=1), tick=False):
            orders.order_confirm_delivery(order=entitlement.order, actor=provider)
    return entitlement


def escrow(user) -> Decimal:
    return balance_of(user, "escrow")


def periods(entitlement) -> list[tuple]:
    return list(entitlement.order.charges.order_by("sequence").values_list("sequence", "period_start", "status"))


class TestRenewal:
    def test_the_next_period_is_charged_when_the_paid_one_ends_and_a_second_run_charges_nothing(
        self, product, international, clerk
    ):
        entitlement = subscribe(product, international, clerk)
        assert entitlement.ends_at == FIRST_END and entitlement.renews
        # a minute before midnight in Shanghai (15:59 UTC): not yet
        assert orders.subscriptions_renew_due(now=FIRST_END - timedelta(minutes=1)) == []
        assert orders.subscriptions_renew_due(now=FIRST_END) == [entitlement.pk]
        assert orders.subscriptions_renew_due(now=FIRST_END + timedelta(minutes=5)) == []
        entitlement.refresh_from_db()
        assert entitlement.status == "active" and entitlement.ends_at == datetime(2027, 3, 28, tzinfo=SHANGHAI)
        assert periods(entitlement) == [(1, date(2027, 1, 31), "held"), (2, date(2027, 2, 28), "held")]
        assert escrow(international) == D("100.00")
        assert OutboxEvent.objects.filter(topic="order.renewed").count() == 1

    def test_a_period_never_starts_in_the_past(self, product, international, clerk):
        # the task did not run for three weeks (an outage): the next period starts the day it runs, and only one
        entitlement = subscribe(product, international, clerk)
        late = datetime(2027, 3, 21, 9, 0, tzinfo=SHANGHAI)
        orders.subscriptions_renew_due(now=late)
        orders.subscriptions_renew_due(now=late + timedelta(minutes=5))
        entitlement.refresh_from_db()
        assert periods(entitlement)[1:] == [(2, date(2027, 3, 21), "held")]
        assert entitlement.ends_at == datetime(2027, 4, 21, tzinfo=SHANGHAI)

    def test_a_disputed_subscription_waits_and_is_not_charged_for_the_dispute(
        self, product, international, clerk, provider
    ):
        entitlement = subscribe(product, international, clerk)
        with time_machine.travel(BOUGHT + timedelta(days=2), tick=False):
            orders.order_dispute(order=entitlement.order, actor=international, reason="Feed is empty.")
        for day in range(0, 90, 7):
            orders.subscriptions_renew_due(now=FIRST_END + timedelta(days=day))
        assert len(periods(entitlement)) == 1
        released = datetime(2027, 5, 28, 10, 0, tzinfo=SHANGHAI)
        with time_machine.travel(released, tick=False):
            orders.order_resolve_dispute(order=entitlement.order, actor=clerk, outcome="release", reason="Fixed.")
        orders.subscriptions_renew_due(now=released + timedelta(minutes=5))
        orders.subscriptions_renew_due(now=released + timedelta(minutes=10))
        assert periods(entitlement)[1:] == [(2, date(2027, 5, 28), "held")]

    def test_short_of_cash_it_lapses_and_a_deposit_within_the_grace_renews_it(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk, cash="60.00")
        orders.subscriptions_renew_due(now=FIRST_END)
        entitlement.refresh_from_db()
        assert entitlement.status == "lapsed" and entitlement.grace_until == FIRST_END + timedelta(days=7)
        assert not entitlement_usable(entitlement, now=FIRST_END)
        assert OutboxEvent.objects.filter(topic="entitlement.lapsed", key=str(entitlement.pk)).count() == 1
        # the periodic run again: still lapsed, nothing more said
        orders.subscriptions_renew_due(now=FIRST_END + timedelta(days=1))
        assert OutboxEvent.objects.filter(topic="entitlement.lapsed", key=str(entitlement.pk)).count() == 1
        # the buyer tops up within the grace period: the relay hands the deposit to the renewal, which starts then
        with time_machine.travel(FIRST_END + timedelta(days=2), tick=False):
            fund(international, clerk, "100.00")
            outbox_relay()
        entitlement.refresh_from_db()
        assert entitlement.status == "active" and entitlement.grace_until is None
        assert periods(entitlement)[1:] == [(2, date(2027, 3, 2), "held")]
        assert entitlement.ends_at == datetime(2027, 4, 2, tzinfo=SHANGHAI)
        assert escrow(international) == D("100.00")

    def test_unpaid_past_the_grace_it_ends(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk, cash="60.00")
        orders.subscriptions_renew_due(now=FIRST_END)
        grace_end = FIRST_END + timedelta(days=7)
        assert entitlements.entitlements_end_due(now=grace_end - timedelta(seconds=1)) == []
        assert entitlements.entitlements_end_due(now=grace_end) == [entitlement.pk]
        entitlement.refresh_from_db()
        assert entitlement.status == "ended" and entitlement.end_reason == "lapsed" and entitlement.grace_until is None
        # a deposit now renews nothing
        with time_machine.travel(grace_end + timedelta(days=1), tick=False):
            fund(international, clerk, "100.00")
            outbox_relay()
        entitlement.refresh_from_db()
        assert entitlement.status == "ended" and len(periods(entitlement)) == 1

    def test_the_buyer_stops_it_and_it_ends_with_the_period_paid(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk)
        orders.entitlement_stop(entitlement=entitlement, actor=international)
        entitlement.refresh_from_db()
        assert (
            not entitlement.renews
            and entitlement.status == "active"
            and entitlement_usable(entitlement, now=FIRST_END - timedelta(minutes=1))
        )
        assert orders.subscriptions_renew_due(now=FIRST_END) == []
        assert entitlements.entitlements_end_due(now=FIRST_END) == [entitlement.pk]
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "stopped" and len(periods(entitlement)) == 1
        with pytest.raises(InvalidTransition):
            orders.entitlement_stop(entitlement=entitlement, actor=international)

    def test_a_lapsed_subscription_stopped_ends_now_and_a_deposit_does_not_renew_it(
        self, product, international, clerk
    ):
        entitlement = subscribe(product, international, clerk, cash="60.00")
        orders.subscriptions_renew_due(now=FIRST_END)
        orders.entitlement_stop(entitlement=entitlement, actor=international)
        entitlement.refresh_from_db()
        assert entitlement.status == "ended" and entitlement.end_reason == "stopped"

    def test_a_free_subscription_renews_without_a_charge(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk, amount="0.00")
        orders.subscriptions_renew_due(now=FIRST_END)
        entitlement.refresh_from_db()
        assert entitlement.status == "active" and entitlement.ends_at == datetime(2027, 3, 28, tzinfo=SHANGHAI)
        assert periods(entitlement) == []

    def test_an_undelivered_subscription_is_not_renewed(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk, delivered=False)
        orders.subscriptions_renew_due(now=FIRST_END)
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "undelivered" and len(periods(entitlement)) == 1
        # the buyer cancels: everything held comes back
        orders.order_cancel(order=entitlement.order, actor=international, reason="Never delivered.")
        assert escrow(international) == D("0.00")

    def test_a_retired_plan_or_an_unlisted_product_is_not_renewed(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk)
        entitlement.order.plan.__class__.objects.filter(pk=entitlement.order.plan_id).update(is_active=False)
        orders.subscriptions_renew_due(now=FIRST_END)
        entitlement.refresh_from_db()
        assert entitlement.status == "ended" and entitlement.end_reason == "lapsed"
        assert len(periods(entitlement)) == 1

    def test_the_gate_decides_each_renewal(self, product, international, clerk, superuser):
        from compliance.models import RestrictedParty

        entitlement = subscribe(product, international, clerk)
        compliance.party_save(
            party=RestrictedParty(name="OVERSEAS BUYER PTE LTD", country="SG", source_list="Test list"),
            actor=superuser,
        )
        orders.subscriptions_renew_due(now=FIRST_END)
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "compliance" and len(periods(entitlement)) == 1

    def test_an_accepted_subscriptions_ended_period_is_paid_to_the_provider_and_not_before(
        self, product, international, provider, clerk
    ):
        entitlement = subscribe(product, international, clerk)
        order = entitlement.order
        orders.subscriptions_renew_due(now=FIRST_END)
        with time_machine.travel(FIRST_END + timedelta(days=1), tick=False):
            orders.order_accept(order=order, actor=international)
            outbox_relay()
        order.refresh_from_db()
        assert order.status == "settled"
        renewal = order.charges.get(sequence=2)
        assert renewal.status == "held"  # the acceptance paid the first period only
        assert orders.period_charges_settle_due(today=date(2027, 3, 27)) == []  # the period's last day: not yet
        assert orders.period_charges_settle_due(today=date(2027, 3, 28)) == [renewal.pk]
        assert orders.period_charges_settle_due(today=date(2027, 3, 29)) == []  # run again: nothing held
        renewal.refresh_from_db()
        assert renewal.status == "settled" and renewal.provider_net == D("49.60")
        assert escrow(international) == D("0.00")

    def test_a_delisting_returns_the_renewal_periods_still_held(self, product, international, provider, clerk):
        entitlement = subscribe(product, international, clerk)
        order = entitlement.order
        with time_machine.travel(FIRST_END - timedelta(days=1), tick=False):
            orders.order_accept(order=order, actor=international)
            outbox_relay()
        orders.subscriptions_renew_due(now=FIRST_END)
        with time_machine.travel(FIRST_END + timedelta(days=1), tick=False):
            listing_services.product_delist(product=product, actor=provider, reason="Feed discontinued.")
            outbox_relay()
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "delisted"
        assert order.charges.get(sequence=2).status == "refunded" and escrow(international) == D("0.00")
        assert orders.period_charges_settle_due(today=date(2027, 4, 1)) == []

    def test_a_refunded_subscription_is_not_renewed(self, product, international, clerk):
        entitlement = subscribe(product, international, clerk)
        orders.order_refund(order=entitlement.order, actor=clerk, reason="Provider stopped the feed.")
        assert orders.subscriptions_renew_due(now=FIRST_END) == []
        assert entitlement.order.charges.count() == 1


class TestRevoke:
    def test_staff_revoke_with_a_reason_and_the_undelivered_order_is_refunded(
        self, product, international, clerk, officer
    ):
        fund(international, clerk, "5000.00")
        entitlement = place(international, product, one_off(product)).entitlement
        with pytest.raises(NotAllowed):
            orders.entitlement_revoke(entitlement=entitlement, actor=international, reason="Mine.")
        with pytest.raises(Exception) as blank:
            orders.entitlement_revoke(entitlement=entitlement, actor=officer, reason="  ")
        assert getattr(blank.value, "code", "") == "reason_required"
        orders.entitlement_revoke(entitlement=entitlement, actor=officer, reason="Onward transfer in breach.")
        entitlement.refresh_from_db()
        assert entitlement.end_reason == "revoked" and entitlement.end_note == "Onward transfer in breach."
        with pytest.raises(InvalidTransition):
            orders.entitlement_revoke(entitlement=entitlement, actor=clerk, reason="Again.")
        entitlement.order.refresh_from_db()
        assert entitlement.order.status == "refunded" and balance_of(international) == D("5000.00")


def test_a_filing_change_leaves_a_product_off_the_market_to_its_own_event(
    provider, reviewer, international, clerk, officer
):
    product = with_pi(listed_product(provider, reviewer), 150_000)
    files = file_all_evidence(provider, officer)
    fund(international, clerk)
    order = place(international, product, one_off(product))
    product.listing_status = "suspended"
    product.save(update_fields=["listing_status"])  # as if the suspension's event were still on its way
    assert orders.entitlements_recheck_exporter(exporter_id=product.provider_id) == []
    compliance.filing_revoke(filing=files[0], actor=officer, reason="Terminated.")
    outbox_relay()
    assert Entitlement.objects.get(order=order).status == "active"
    assert not OutboxEvent.objects.filter(topic="compliance.filing_revoked", published_at__isnull=True).exists()


def test_a_filing_change_ends_what_the_gate_can_no_longer_decide(provider, reviewer, international, clerk, officer):
    # the listed revision no longer offers file delivery: fail closed
    product = with_pi(listed_product(provider, reviewer), 150_000)
    file_all_evidence(provider, officer)
    fund(international, clerk)
    order = place(international, product, one_off(product))
    Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["sandbox"])
    assert orders.entitlements_recheck_exporter(exporter_id=product.provider_id) == [order.entitlement.pk]
    assert Entitlement.objects.get(order=order).end_reason == "compliance"


@time_machine.travel(datetime(2027, 1, 5, 10, 0, tzinfo=SHANGHAI), tick=False)
def test_a_subscription_held_past_its_first_period_is_released_with_a_full_period(
    provider, reviewer, international, clerk, officer
):
    product = with_pi(listed_product(provider, reviewer), 150_000)
    fund(international, clerk)
    plan = PricePlanFactory(product=product, kind="subscription", period="month", currency="CNY", amount=D("50"))
    order = place(international, product, plan)
    assert order.status == "compliance_hold"
    with time_machine.travel(datetime(2027, 2, 20, 10, 0, tzinfo=SHANGHAI), tick=False):
        file_all_evidence(provider, officer)
        outbox_relay()
    order.refresh_from_db()
    assert order.status == "released"
    # the first period runs from the release, not from the order: 20 February to 19 March
    assert order.entitlement.ends_at == datetime(2027, 3, 20, tzinfo=SHANGHAI)
    assert list(order.charges.values_list("period_start", "period_end")) == [(date(2027, 2, 20), date(2027, 3, 19))]


@time_machine.travel(datetime(2027, 1, 5, 10, 0, tzinfo=SHANGHAI), tick=False)
def test_a_metered_plan_held_then_released_moves_its_budget_period_too(
    provider, reviewer, international, clerk, officer
):
    product = with_pi(listed_product(provider, reviewer), 150_000)
    Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["file", "api"])
    fund(international, clerk)
    plan = PricePlanFactory(
        product=product, kind="metered", period="month", currency="CNY", amount=D("10"), included_calls=100,
        unit_price=D("0.01"),
    )  # fmt: skip
    order = place(international, product, plan, usage_budget=D("20.00"), delivery_mode="api")
    assert order.status == "compliance_hold"
    with time_machine.travel(datetime(2027, 1, 9, 10, 0, tzinfo=SHANGHAI), tick=False):
        file_all_evidence(provider, officer)
        outbox_relay()
    order.refresh_from_db()
    assert order.status == "released"
    assert set(order.charges.values_list("kind", "period_start", "period_end")) == {
        ("period", date(2027, 1, 9), date(2027, 2, 8)),
        ("usage_budget", date(2027, 1, 9), date(2027, 2, 8)),
    }
