"""Demo money and trades for `manage.py seed_demo`: deposits booked by the settlement clerk (one from a bank
statement), orders in every state (released, delivered, settled, disputed, refunded, cancelled, held by
compliance), a product whose provider approves each buyer with an access request waiting, and withdrawals waiting
and paid. Through the services throughout, so the demo has the ledger and the audit trail of real use. Safe to
run again: it seeds only once.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from exchange.models import Board, User
from exchange.outbox import outbox_relay
from listings import services as listing_services
from listings.demo import provide_dataset
from listings.models import Category, DataProduct, PricePlan, Revision

from .models import Deposit, Order
from .services import access, deposits, orders, withdrawals

CLERK = "clerk@exchange.example"
SECOND_CLERK = "admin@exchange.example"  # the superuser stands in as the second pair of eyes
MARKER = "DEMO-DEP-0001"  # the first demo deposit: when it exists, the demo's money is seeded
GATED_TITLE = "Port of Shanghai berth schedules (approved buyers)"

# (bank reference, firm's admin, currency, amount)
DEPOSITS = [
    (MARKER, "admin@pacific.example", "USD", "250000.00"),
    ("DEMO-DEP-0002", "admin@pacific.example", "CNY", "2000000.00"),
    ("DEMO-DEP-0003", "admin@consumer.example", "CNY", "1500000.00"),
    ("DEMO-DEP-0004", "admin@harbour.example", "CNY", "800000.00"),
    ("DEMO-DEP-0005", "admin@supply.example", "CNY", "500000.00"),
]
STATEMENT = (
    "value_date,bank_reference,payment_reference,currency,amount\n"
    "{day},DEMO-STMT-0001,529900RHEINLOGIS0090,USD,120000.00\n"
    "{day},DEMO-STMT-0002,UNKNOWN-PAYER,CNY,999.00\n"
)


def _user(email: str) -> User:
    return User.objects.get(email=email)


def _product(title_en: str) -> DataProduct:
    return Revision.objects.get(title_en=title_en, status="listed").product


def _plan(product: DataProduct, kind: str, currency: str | None = None) -> PricePlan:
    plans = product.plans.filter(kind=kind, is_active=True, buyer_firm__isnull=True)
    if currency:
        plans = plans.filter(currency=currency)
    plan = plans.order_by("amount").first() or product.plans.filter(is_active=True, buyer_firm__isnull=True).first()
    assert plan is not None, f"the demo product {product} has no plan"
    return plan


def _order(buyer: str, title_en: str, kind: str = "one_off", **fields: Any) -> Order:
    product = _product(title_en)
    plan = _plan(product, kind)
    revision = product.listed_revision
    assert revision is not None
    if plan.kind == PricePlan.Kind.METERED:
        fields.setdefault("usage_budget", Decimal("2000.00"))
    return orders.order_place(
        actor=_user(buyer),
        product_id=product.pk,
        plan_id=plan.pk,
        delivery_mode=fields.pop("delivery_mode", revision.delivery_modes[0]),
        intended_use=fields.pop("intended_use", "Market analysis for our own planning."),
        **fields,
    )


def _fresh(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def _provider_of(order: Order) -> User:
    membership = order.provider_firm.memberships.filter(role__in=["firm_admin", "trader"]).order_by("pk").first()
    assert membership is not None
    return membership.user


def _gated_product() -> DataProduct:
    """A product whose provider approves each buyer (the listed revision requires approval)."""
    existing = Revision.objects.filter(title_en=GATED_TITLE).first()
    if existing is not None:
        return existing.product
    actor = _user("trader@lingang.example")
    reviewer = _user("reviewer@exchange.example")
    product = listing_services.product_create(
        actor=actor,
        board=Board.objects.get(code=Board.Code.INTERNATIONAL),
        title_en=GATED_TITLE,
        title_zh="上海港泊位计划（经批准的买方）",
        summary_en="Berth allocation schedules of the Port of Shanghai, for approved buyers only.",
        summary_zh="上海港泊位分配计划，仅向经批准的买方提供。",
        category=Category.objects.get(code="supply-chain"),
        tags=["port", "berth", "港口"],
        classification="general",
        coverage_geography="Port of Shanghai",
        origin_countries=["CN"],
        update_frequency="daily",
        delivery_modes=["file"],
        dictionary=[
            {"name": "vessel", "type": "string", "description": "Vessel name", "unit": "", "personal": False, "sensitive": False},
            {"name": "berth", "type": "string", "description": "Berth", "unit": "", "personal": False, "sensitive": False},
            {"name": "eta", "type": "date", "description": "Expected arrival", "unit": "", "personal": False, "sensitive": False},
        ],
        licence_en="Operational planning by the buyer only; no onward transfer.",
        licence_zh="仅限买方用于运营计划，不得转让。",
        licence_terms={"purposes": ["supply chain planning"], "territories": ["worldwide"], "onward_transfer": False, "resale": False},
        requires_approval=True,
    )  # fmt: skip
    listing_services.revision_set_sample(
        product=product,
        actor=actor,
        name="sample.csv",
        content=b"vessel,berth,eta\nCOSCO SHIPPING ARIES,Yangshan 3,2026-12-09\nMSC GULSUN,Waigaoqiao 5,2026-12-10\n",
    )
    provide_dataset(
        product,
        actor,
        b"vessel,berth,eta\nCOSCO SHIPPING ARIES,Yangshan 3,2026-12-09\nMSC GULSUN,Waigaoqiao 5,2026-12-10\n"
        b"EVER GIVEN,Yangshan 1,2026-12-11\n",
    )
    listing_services.plan_create(
        product=product, actor=actor, name_en="One-off extract", name_zh="一次性提取",
        kind="one_off", currency="USD", amount=Decimal("1800.00"),
    )  # fmt: skip
    revision = listing_services.product_submit(product=product, actor=actor)
    listing_services.review_start(product=product, actor=reviewer)
    listing_services.review_approve(product=product, actor=reviewer, notes="Demo: registration checked.")
    Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(days=1))
    listing_services.notice_conclude(revision_id=revision.pk)
    product.refresh_from_db()
    return product


def seed(*, stdout: Any = None) -> None:
    if Deposit.objects.filter(bank_reference=MARKER).exists():
        return
    clerk = _user(CLERK)
    today = timezone.localdate()
    for reference, email, currency, amount in DEPOSITS:
        deposits.deposit_book(
            firm=_user(email).membership.firm,
            currency=currency,
            amount=Decimal(amount),
            bank_reference=reference,
            value_date=today - timedelta(days=20),
            actor=clerk,
        )
    deposits.statement_import(
        file_name="demo-statement.csv",
        content=STATEMENT.format(day=(today - timedelta(days=10)).isoformat()).encode(),
        actor=clerk,
    )

    consumer, pacific = "trader@consumer.example", "trader@pacific.example"
    # Trades in each state: on the domestic board (Hangzhou) and the international board (Singapore).
    _order(consumer, "Shanghai retail footfall")  # released: the provider has yet to deliver
    delivered = _order(consumer, "Regional bank loan spreads")
    settled = _order(pacific, "China export flows by HS code")
    cancelled = _order(pacific, "Yangtze Delta import declarations")
    disputed = _order(pacific, "Cross-border e-commerce parcel volumes")
    refunded = _order(pacific, "Lingang bonded zone trade statistics")
    for order in (delivered, settled, disputed, refunded):
        orders.order_confirm_delivery(order=order, actor=_provider_of(order), note="Delivered as agreed.")
    orders.order_accept(order=_fresh(settled), actor=_user(pacific))
    orders.order_cancel(order=_fresh(cancelled), actor=_user(pacific), reason="Budget moved to next quarter.")
    orders.order_dispute(order=_fresh(disputed), actor=_user(pacific), reason="The March file is missing.")
    half = (_fresh(refunded).total / 2).quantize(Decimal("0.01"))
    orders.order_refund(
        order=_fresh(refunded), actor=clerk, reason="Half the months were missing; agreed with both firms.", amount=half
    )
    # A trade held by compliance: the consumer credit panel to Singapore waits for the provider's consent records.
    held = _order(pacific, "Consumer credit panel, Yangtze River Delta", kind="subscription")

    # An access request waiting for the provider's answer.
    gated = _gated_product()
    access.access_request_create(
        actor=_user(pacific),
        product_id=gated.pk,
        intended_use="Berth planning for our clients' shipments to Singapore.",
    )

    # Withdrawals: one paid by two clerks (above the second-approval threshold), one waiting.
    paid = withdrawals.withdrawal_request(
        firm=_user("admin@consumer.example").membership.firm, currency="CNY", amount=Decimal("150000.00"),
        bank_account="Hangzhou Consumer Insights Co., Ltd. · 6222 0212 0000 1234 · ICBC Hangzhou", actor=_user("admin@consumer.example"),
    )  # fmt: skip
    withdrawals.withdrawal_approve(withdrawal=paid, actor=clerk)
    paid.refresh_from_db()
    withdrawals.withdrawal_approve_second(withdrawal=paid, actor=_user(SECOND_CLERK))
    paid.refresh_from_db()
    withdrawals.withdrawal_pay(withdrawal=paid, actor=clerk, bank_reference="ICBC-OUT-2026-0001")
    withdrawals.withdrawal_request(
        firm=_user("admin@pacific.example").membership.firm, currency="USD", amount=Decimal("5000.00"),
        bank_account="Pacific Trade Analytics Pte. Ltd. · 003-912345-6 · DBS Singapore", actor=_user("admin@pacific.example"),
    )  # fmt: skip
    # What the worker does after each commit: settle the accepted order, and so on.
    outbox_relay()
    if stdout is not None:
        stdout.write(
            f"  Trading: {Deposit.objects.count()} deposits, {Order.objects.count()} orders "
            f"(one held by compliance: {held.reference}), an access request waiting."
        )
