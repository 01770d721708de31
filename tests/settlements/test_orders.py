"""Orders through the services: the gate in the order's transaction, escrow, every transition and refusal, fees and
settlement, access requests. The package's fixture checks the ledger's invariants after each test."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from django.utils import timezone
from guardian.shortcuts import remove_perm

from compliance import services as compliance
from compliance.models import Assessment, ComplianceCase, EvidenceKind, ExportCounter, RestrictedParty
from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed
from exchange.outbox import OutboxEvent, outbox_relay
from listings.models import ListingStatus, PricePlan, Revision
from settlements.models import AccessRequest, Account, Charge, FeeSchedule, Order
from settlements.selectors import order_terms
from settlements.services import access, orders
from settlements.services.ledger import account_for, exchange_account
from tests.compliance.factories import filing, with_pi
from tests.factories import MemberFirmFactory, PricePlanFactory, admit, board, listed_product, member
from tests.settlements.factories import fund

pytestmark = pytest.mark.django_db
D = Decimal


def balance(user, kind="cash", currency="CNY") -> Decimal:
    return account_for(firm=user.membership.firm, kind=kind, currency=currency).balance


def one_off(product, amount="1000.00", currency="CNY", **fields) -> PricePlan:
    return PricePlanFactory(
        product=product, name_en="Once", kind="one_off", period="", currency=currency, amount=D(amount), **fields
    )


def place(user, product, plan, **fields) -> Order:
    return orders.order_place(
        actor=user,
        product_id=product.pk,
        plan_id=plan.pk,
        delivery_mode=fields.pop("delivery_mode", "file"),
        intended_use=fields.pop("intended_use", "Market sizing for our board."),
        **fields,
    )


def refusal(user, product, plan, **fields) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        place(user, product, plan, **fields)
    return refused.value


def relay() -> None:
    """What the worker does after each commit (tests run inside one transaction: nothing is kicked)."""
    outbox_relay()


def topics(order) -> list[str]:
    return list(
        OutboxEvent.objects.filter(key=str(order.pk), topic__startswith="order.")
        .order_by("id")
        .values_list("topic", flat=True)
    )


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer)


class TestPlacing:
    def test_a_cleared_order_holds_the_price_and_fee_in_escrow_and_is_released(self, product, international, clerk):
        # given a foreign buyer with cash, and a one-off plan on the international board (0.8 % on the provider)
        fund(international, clerk, "5000.00")
        plan = one_off(product, "1000.00")
        # when
        order = place(international, product, plan)
        # then the money moved cash -> escrow, the gate cleared it and counted the export
        assert order.status == "released" and order.released_at
        assert (order.price, order.buyer_fee, order.provider_fee) == (D("1000.00"), D("0.00"), D("8.00"))
        assert balance(international) == D("4000.00") and balance(international, "escrow") == D("1000.00")
        assert order.assessment.decision == "exempt" or order.assessment.rules == ["R13"]
        assert ExportCounter.objects.filter(exporter=product.provider).exists()
        assert topics(order) == ["order.created", "order.released"]
        assert list(order.events.values_list("kind", flat=True)) == ["placed", "released"]
        [charge] = order.charges.all()
        assert (charge.kind, charge.status, charge.total) == ("purchase", "held", D("1000.00"))

    def test_the_snapshot_keeps_what_was_bought(self, product, international, clerk):
        fund(international, clerk)
        plan = one_off(product, "1000.00")
        order = place(international, product, plan)
        # when the provider changes the plan's price and the licence moves on
        PricePlan.objects.filter(pk=plan.pk).update(amount=D("1.00"))
        Revision.objects.filter(pk=order.revision_id).update(licence_en="Changed later")
        order.refresh_from_db()
        # then the order still says what was bought
        snap = order.snapshot
        assert (
            snap["plan"]["amount"] == "1000.00" and snap["licence"]["en"] == "For the buyer's internal analytics only."
        )
        assert snap["licence"]["zh"] and snap["licence"]["terms"]
        assert snap["fees"]["provider_rate_bps"] == 80 and snap["compliance"]["assessment"] == order.assessment_id
        assert snap["stated"] == {"intended_use": "Market sizing for our board.", "destination": "SG"}

    def test_fees_come_from_the_schedule_in_force_and_the_buyer_sees_them_first(
        self, product, international, clerk, superuser
    ):
        FeeSchedule.objects.create(
            board=product.board, currency="CNY", effective_from=timezone.localdate() - timedelta(days=1),
            provider_rate_bps=250, buyer_rate_bps=100, buyer_fixed=D("5.00"),
        )  # fmt: skip
        fund(international, clerk)
        plan = one_off(product, "999.99")
        terms = order_terms(
            user=international, product_id=product.pk, plan_id=plan.pk, delivery_mode="file", intended_use="x"
        )
        assert (terms.price, terms.buyer_fee, terms.provider_fee, terms.total) == (
            D("999.99"), D("15.00"), D("25.00"), D("1014.99"),
        )  # fmt: skip
        order = place(international, product, plan)
        assert (order.buyer_fee, order.provider_fee, order.total) == (D("15.00"), D("25.00"), D("1014.99"))

    def test_a_domestic_trade_moves_no_data_abroad_and_counts_nothing(self, provider, reviewer, domestic, clerk):
        product = listed_product(provider, reviewer, board_code="domestic")
        fund(domestic, clerk)
        order = place(domestic, product, one_off(product, "50.00"))
        assert order.status == "released" and order.assessment.decision == "no_transfer"
        assert not ExportCounter.objects.filter(personal_info_subjects__gt=0).exists()

    def test_a_subscription_charges_its_first_period(self, product, international, clerk):
        fund(international, clerk, "20000.00")
        plan = product.plans.get()  # the factory's annual plan, 12,000.00 CNY
        order = place(international, product, plan)
        [charge] = order.charges.all()
        assert charge.kind == "period" and charge.period_start == timezone.localdate()
        assert charge.period_end == charge.period_start.replace(year=charge.period_start.year + 1) - timedelta(days=1)
        assert balance(international, "escrow") == D("12000.00")

    def test_a_metered_plan_holds_its_base_fee_and_the_budget_the_buyer_chose(self, product, international, clerk):
        fund(international, clerk, "1000.00")
        plan = PricePlanFactory(
            product=product,
            kind="metered",
            period="month",
            amount=D("100.00"),
            included_calls=1000,
            unit_price=D("0.0125"),
        )
        order = place(international, product, plan, usage_budget=D("250.00"))
        assert sorted(order.charges.values_list("kind", "price")) == [
            ("period", D("100.00")),
            ("usage_budget", D("250.00")),
        ]
        assert balance(international, "escrow") == D("350.00") and order.usage_budget == D("250.00")
        assert refusal(international, product, plan).details.get("usage_budget")
        assert refusal(international, product, one_off(product), usage_budget=D("1.00")).details.get("usage_budget")


class TestRefusals:
    def test_insufficient_funds_and_nothing_is_written(self, product, international, clerk):
        fund(international, clerk, "999.99")
        refused = refusal(international, product, one_off(product, "1000.00"))
        assert refused.code == "insufficient_funds" and refused.status_code == 422
        assert not Order.objects.exists() and not Assessment.objects.filter(purpose="trade").exists()
        assert balance(international) == D("999.99")

    def test_a_currency_the_buyer_does_not_hold(self, product, international, clerk):
        fund(international, clerk, "5000.00")  # CNY only
        refused = refusal(international, product, one_off(product, "10.00", currency="USD"))
        assert refused.code == "currency_not_held"

    def test_a_restricted_party_before_any_money_moves(self, product, international, clerk, superuser):
        compliance.party_save(
            party=RestrictedParty(name="OVERSEAS BUYER PTE LTD", country="SG", source_list="Test list"), actor=superuser
        )
        fund(international, clerk)
        refused = refusal(international, product, one_off(product))
        assert refused.code == "restricted_party" and refused.status_code == 403
        assert not Order.objects.exists() and balance(international) == D("100000.00")

    def test_prohibited_by_the_engine_with_its_reasons(self, provider, reviewer, officer, clerk):
        # US-origin data for a buyer in Hong Kong: the officer refused the review (R4), so the rules prohibit it
        product = listed_product(provider, reviewer)
        Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
        product.refresh_from_db()
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"), "trader")
        fund(hk, clerk)
        held = place(hk, product, one_off(product))
        compliance.case_refuse(case=held.case, actor=officer, resolution="Covered data.")
        relay()
        refused = refusal(hk, product, one_off(product))
        assert refused.code == "prohibited" and refused.details["rules"]
        assert refused.details["reasons"][0]["text_en"]
        assert Order.objects.count() == 1 and balance(hk) == D("100000.00")

    def test_own_product_suspended_retired_and_unoffered_delivery(self, product, provider, international, clerk):
        fund(international, clerk)
        plan = one_off(product)
        assert refusal(provider, product, plan).code == "own_product"
        assert refusal(international, product, plan, delivery_mode="sandbox").code == "delivery_not_offered"
        PricePlan.objects.filter(pk=plan.pk).update(is_active=False)
        assert refusal(international, product, plan).code == "plan_retired"
        product.listing_status = ListingStatus.SUSPENDED
        product.save(update_fields=["listing_status"])
        assert refusal(international, product, product.plans.first()).code == "suspended"
        assert not Order.objects.exists()

    def test_a_board_the_firm_may_see_but_not_trade_on(self, product, international, clerk):
        fund(international, clerk)
        remove_perm("exchange.trade_on_board", international.membership.firm.group, board("international"))
        refused = refusal(international, product, one_off(product))
        assert refused.code == "board_not_tradable" and refused.status_code == 403

    def test_not_for_analysts_or_unverified_firms_or_staff(self, product, international, clerk):
        analyst = member(international.membership.firm, "analyst")
        with pytest.raises(NotAllowed):
            place(analyst, product, one_off(product))
        with pytest.raises(NotAllowed):
            place(clerk, product, one_off(product))

    def test_a_private_offer_to_another_firm_is_not_there(self, product, international, clerk):
        other = MemberFirmFactory(country="SG", role="buyer")
        offer = one_off(product, buyer_firm=other, buyer_code=other.lei)
        fund(international, clerk)
        assert refusal(international, product, offer).code == "plan_not_found"
        mine = one_off(product, "10.00", buyer_firm=international.membership.firm, buyer_code="x")
        assert place(international, product, mine).plan == mine

    def test_a_destination_other_than_the_buyers_country_is_not_assessed(self, product, international, clerk):
        fund(international, clerk)
        refused = refusal(international, product, one_off(product), destination="US")
        assert refused.code == "validation_error" and "destination" in refused.details


class TestCompliance:
    def test_a_held_order_waits_with_its_case_and_is_released_when_the_evidence_clears_it(
        self, provider, reviewer, international, clerk, officer
    ):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        fund(international, clerk)
        order = place(international, product, one_off(product))
        assert order.status == "compliance_hold" and order.case.status == "open"
        assert balance(international, "escrow") == D("1000.00")
        assert not ExportCounter.objects.filter(personal_info_subjects__gt=0).exists()
        # when the officer accepts the exporter's filings, the case clears itself and tells settlements
        for kind in (EvidenceKind.STANDARD_CONTRACT, EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD):
            filing(
                provider, kind, accepted_by=officer, receipt_reference="SH-2026-1", receipt_filed_on=date(2026, 1, 9)
            )
        relay()
        order.refresh_from_db()
        # then the order is released and the export counted then
        assert order.status == "released"
        assert ExportCounter.objects.get(exporter=product.provider).personal_info_subjects == 150_000
        assert topics(order) == ["order.created", "order.held", "order.released"]

    def test_an_officers_clearance_releases_the_held_order(self, provider, reviewer, officer, clerk, superuser):
        product = listed_product(provider, reviewer)
        Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
        product.refresh_from_db()
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"), "trader")
        fund(hk, clerk)
        order = place(hk, product, one_off(product))
        assert order.status == "compliance_hold"
        compliance.case_clear(case=order.case, actor=officer, resolution="Not covered data.")
        relay()
        order.refresh_from_db()
        assert order.status == "released"

    def test_an_officers_refusal_returns_the_escrow(self, provider, reviewer, officer, clerk):
        product = listed_product(provider, reviewer)
        Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
        product.refresh_from_db()
        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"), "trader")
        fund(hk, clerk, "1000.00")
        order = place(hk, product, one_off(product))
        compliance.case_refuse(case=order.case, actor=officer, resolution="Covered data for a country of concern.")
        relay()
        relay()  # a second run of the relay changes nothing
        order.refresh_from_db()
        assert order.status == "refused" and "Covered data" in order.reason
        assert balance(hk) == D("1000.00") and balance(hk, "escrow") == D("0.00")
        assert order.charges.get().status == "refunded"

    def test_a_held_order_may_be_cancelled_by_the_buyer(self, provider, reviewer, international, clerk):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        fund(international, clerk, "1000.00")
        order = place(international, product, one_off(product))
        orders.order_cancel(order=order, actor=international, reason="No longer needed.")
        assert balance(international) == D("1000.00")


class TestAfterRelease:
    @pytest.fixture
    def order(self, product, international, clerk):
        fund(international, clerk, "5000.00")
        return place(international, product, one_off(product, "1000.00"))

    def test_delivery_acceptance_and_settlement(self, order, provider, international):
        with pytest.raises(NotAllowed):
            orders.order_confirm_delivery(order=order, actor=international)
        orders.order_confirm_delivery(order=order, actor=provider, note="Files sent by SFTP.")
        order.refresh_from_db()
        assert order.status == "delivered" and order.acceptance_due_at > timezone.now() + timedelta(days=6)
        with pytest.raises(NotAllowed):
            orders.order_accept(order=order, actor=provider)
        orders.order_accept(order=order, actor=international)
        relay()
        order.refresh_from_db()
        # then escrow went to the provider's payable, net of 0.8 %, and the fee to the exchange
        assert order.status == "settled" and order.settled_at
        assert balance(provider, "payable") == D("992.00")
        assert exchange_account(kind="fee_revenue", currency="CNY").balance == D("8.00")
        assert balance(international, "escrow") == D("0.00")
        assert topics(order)[-3:] == ["order.delivered", "order.accepted", "order.settled"]

    def test_settling_twice_settles_once(self, order, provider, international):
        orders.order_confirm_delivery(order=order, actor=provider)
        orders.order_accept(order=order, actor=international)
        orders.order_settle(order=order)
        orders.order_settle(order=order)
        relay()
        assert balance(provider, "payable") == D("992.00")
        assert order.charges.get().entries.filter(kind="settlement").count() == 1

    def test_acceptance_is_automatic_after_the_window(self, order, provider, settings):
        orders.order_confirm_delivery(order=order, actor=provider)
        assert orders.orders_accept_due() == []
        with time_machine.travel(timezone.now() + timedelta(days=settings.SETTLEMENT_ACCEPTANCE_DAYS, seconds=1)):
            assert orders.orders_accept_due() == [order.pk]
            assert orders.orders_accept_due() == []  # run twice, accepted once
            relay()
        order.refresh_from_db()
        assert order.status == "settled" and order.events.filter(kind="accepted", actor=None).exists()

    def test_the_buyer_cancels_before_delivery_not_after(self, order, provider, international):
        orders.order_cancel(order=order, actor=international)
        assert balance(international) == D("5000.00")
        with pytest.raises(InvalidTransition):
            orders.order_cancel(order=order, actor=international)

    def test_no_cancel_after_delivery(self, order, provider, international):
        orders.order_confirm_delivery(order=order, actor=provider)
        with pytest.raises(InvalidTransition):
            orders.order_cancel(order=order, actor=international)

    def test_a_dispute_then_a_partial_refund(self, order, provider, international, clerk):
        orders.order_confirm_delivery(order=order, actor=provider)
        with pytest.raises(ApplicationError):
            orders.order_dispute(order=order, actor=international, reason="  ")
        orders.order_dispute(order=order, actor=international, reason="Half the files are empty.")
        with pytest.raises(NotAllowed):
            orders.order_refund(order=order, actor=international, reason="x")
        orders.order_resolve_dispute(
            order=order, actor=clerk, outcome="refund", reason="Half delivered.", amount=D("400.00")
        )
        order.refresh_from_db()
        assert order.status == "refunded"
        charge = order.charges.get()
        assert (charge.refunded, charge.provider_net, charge.fee_collected) == (D("400.00"), D("595.20"), D("4.80"))
        assert balance(international) == D("4400.00") and balance(provider, "payable") == D("595.20")

    def test_a_dispute_released_by_staff_settles(self, order, provider, international, clerk):
        orders.order_confirm_delivery(order=order, actor=provider)
        orders.order_dispute(order=order, actor=international, reason="Late.")
        orders.order_resolve_dispute(order=order, actor=clerk, outcome="release", reason="Delivered within terms.")
        relay()
        order.refresh_from_db()
        assert order.status == "settled" and balance(provider, "payable") == D("992.00")

    def test_no_dispute_after_the_window(self, order, provider, international, settings):
        orders.order_confirm_delivery(order=order, actor=provider)
        later = timezone.now() + timedelta(days=settings.SETTLEMENT_ACCEPTANCE_DAYS, seconds=1)
        with time_machine.travel(later), pytest.raises(InvalidTransition) as closed:
            orders.order_dispute(order=order, actor=international, reason="Too late.")
        assert closed.value.code == "acceptance_window_closed"

    def test_a_whole_refund_by_staff(self, order, international, clerk):
        orders.order_refund(order=order, actor=clerk, reason="Provider could not deliver.")
        assert balance(international) == D("5000.00")
        with pytest.raises(InvalidTransition):
            orders.order_refund(order=order, actor=clerk, reason="again")

    def test_a_refund_larger_than_held_is_refused(self, order, clerk):
        with pytest.raises(ApplicationError) as refused:
            orders.order_refund(order=order, actor=clerk, reason="x", amount=D("1000.01"))
        assert refused.value.code == "invalid_amount"


class TestAccessRequests:
    @pytest.fixture
    def gated(self, product):
        Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
        product.refresh_from_db()
        return product

    def test_an_approval_is_good_for_one_order(self, gated, provider, international, clerk):
        fund(international, clerk)
        plan = one_off(gated)
        assert refusal(international, gated, plan).code == "access_request_required"
        request = access.access_request_create(
            actor=international, product_id=gated.pk, intended_use="Credit scoring of importers."
        )
        assert request.status == "pending" and request.destination == "SG"
        with pytest.raises(ApplicationError) as twice:
            access.access_request_create(actor=international, product_id=gated.pk, intended_use="again")
        assert twice.value.code == "access_request_open"
        assert refusal(international, gated, plan).code == "access_request_required"
        with pytest.raises(NotAllowed):
            access.access_request_approve(request=request, actor=international)
        access.access_request_approve(request=request, actor=provider, reason="Fine.")
        other_use = refusal(international, gated, plan, intended_use="Resale to third parties.")
        assert other_use.code == "validation_error" and "intended_use" in other_use.details
        order = place(international, gated, plan, intended_use="")
        assert order.access_request == request and order.intended_use == "Credit scoring of importers."
        request.refresh_from_db()
        assert request.status == "used"
        assert refusal(international, gated, plan).code == "access_request_required"

    def test_declined_needs_a_reason_and_expiry(self, gated, provider, international, settings):
        request = access.access_request_create(actor=international, product_id=gated.pk, intended_use="x")
        with pytest.raises(ApplicationError):
            access.access_request_decline(request=request, actor=provider, reason="")
        access.access_request_decline(request=request, actor=provider, reason="Not for resale firms.")
        again = access.access_request_create(actor=international, product_id=gated.pk, intended_use="y")
        with time_machine.travel(timezone.now() + timedelta(days=settings.SETTLEMENT_ACCESS_REQUEST_DAYS, seconds=1)):
            assert access.access_requests_expire() == 1
            assert access.access_requests_expire() == 0
        again.refresh_from_db()
        assert again.status == "expired"
        assert AccessRequest.objects.filter(status="declined", decision_reason="Not for resale firms.").exists()

    def test_an_unused_approval_expires(self, gated, provider, international, clerk, settings):
        fund(international, clerk)
        request = access.access_request_create(actor=international, product_id=gated.pk, intended_use="x")
        access.access_request_approve(request=request, actor=provider)
        with time_machine.travel(timezone.now() + timedelta(days=settings.SETTLEMENT_ACCESS_APPROVAL_DAYS, seconds=1)):
            assert refusal(international, gated, one_off(gated)).code == "access_request_required"
            assert access.access_requests_expire() == 1

    def test_a_product_that_needs_no_approval_needs_no_request(self, product, international):
        with pytest.raises(ApplicationError) as refused:
            access.access_request_create(actor=international, product_id=product.pk, intended_use="x")
        assert refused.value.code == "approval_not_required"


def test_no_orders_no_accounts_moved_for_charge_free_plans(product, international):
    order = place(international, product, one_off(product, "0.00"))
    assert order.status == "released" and not order.charges.exists()
    assert not Account.objects.filter(firm=international.membership.firm).exclude(balance=0).exists()
    assert Charge.objects.count() == 0 and ComplianceCase.objects.count() == 0


class TestMeteredBudgets:
    @pytest.fixture
    def metered(self, product, international, clerk):
        fund(international, clerk, "2000.00")
        plan = PricePlanFactory(
            product=product,
            kind="metered",
            period="month",
            amount=D("100.00"),
            included_calls=1000,
            unit_price=D("0.01"),
        )
        return place(international, product, plan, usage_budget=D("1000.00"))

    def test_a_settled_order_returns_its_budget_when_the_period_ends(self, metered, provider, international):
        orders.order_confirm_delivery(order=metered, actor=provider)
        orders.order_accept(order=metered, actor=international)
        relay()
        metered.refresh_from_db()
        assert metered.status == "settled" and balance(international, "escrow") == D("1000.00")
        budget = metered.charges.get(kind="usage_budget")
        assert budget.period_end == budget.period_start + relativedelta(months=1) - timedelta(days=1)
        assert orders.usage_budgets_close_due(today=budget.period_end) == []
        assert orders.usage_budgets_close_due(today=budget.period_end + timedelta(days=1)) == [budget.pk]
        assert orders.usage_budgets_close_due(today=budget.period_end + timedelta(days=2)) == []
        assert balance(international, "escrow") == D("0.00") and balance(international) == D("1900.00")
        assert balance(provider, "payable") == D("99.20")  # the period's price net of 0.8 %, never the budget

    def test_a_partial_refund_never_pays_the_budget_to_the_provider(self, metered, provider, international, clerk):
        orders.order_confirm_delivery(order=metered, actor=provider)
        orders.order_dispute(order=metered, actor=international, reason="Half the data was missing.")
        orders.order_resolve_dispute(order=metered, actor=clerk, outcome="refund", reason="Half.", amount=D("50.00"))
        budget = metered.charges.get(kind="usage_budget")
        period = metered.charges.get(kind="period")
        assert (budget.status, budget.refunded, budget.provider_net) == ("refunded", D("1000.00"), D("0.00"))
        assert (period.refunded, period.provider_net + period.fee_collected) == (D("50.00"), D("50.00"))
        assert balance(international) == D("1950.00") and balance(provider, "payable") == period.provider_net
        with pytest.raises(ApplicationError):
            orders.order_refund(order=metered, actor=clerk, reason="again", amount=D("100.01"))


def test_an_approval_is_for_the_buyers_country_and_the_revision_approved(product, provider, international, clerk):
    from tests.factories import RevisionFactory

    Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
    fund(international, clerk)
    with pytest.raises(ApplicationError) as elsewhere:
        access.access_request_create(actor=international, product_id=product.pk, intended_use="x", destination="US")
    assert "destination" in elsewhere.value.details
    request = access.access_request_create(actor=international, product_id=product.pk, intended_use="Scoring.")
    access.access_request_approve(request=request, actor=provider)
    # when the provider lists a new revision, the approval of the old one no longer buys it
    newer = RevisionFactory(product=product, number=2, created_by=provider, requires_approval=True)
    type(product).objects.filter(pk=product.pk).update(listed_revision=newer)
    product.refresh_from_db()
    assert refusal(international, product, one_off(product)).code == "access_request_required"
    # and the buyer may ask again: the old approval ends
    again = access.access_request_create(actor=international, product_id=product.pk, intended_use="Scoring.")
    request.refresh_from_db()
    assert request.status == "expired" and again.revision_number == 2
