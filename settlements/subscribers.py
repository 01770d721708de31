"""What settlements does when other parts of the exchange report an event (exchange.outbox): compliance's
decisions on the cases that hold orders and on filings, the settlement that follows an order's acceptance, products
leaving the market (their entitlements end) and deposits (lapsed subscriptions renew). Each handler is
idempotent (the services leave an order already moved as it is); the relay delivers each event once per handler
and retries it when the handler fails."""

from __future__ import annotations

from compliance.models import ComplianceCase
from exchange.outbox import Event, subscriber

from .models import Entitlement, Order
from .services.orders import (
    entitlements_end_for_product,
    entitlements_recheck_exporter,
    held_orders_of_case,
    order_compliance_recheck,
    order_compliance_refuse,
    order_settle,
    subscriptions_renew_for_firm,
)


@subscriber("compliance.case_cleared", name="settlements.release_held_orders")
def release_held_orders(event: Event) -> None:
    case = ComplianceCase.objects.get(pk=event.payload["case"])
    for order in held_orders_of_case(case):
        order_compliance_recheck(order=order)


@subscriber("compliance.case_refused", name="settlements.refuse_held_orders")
def refuse_held_orders(event: Event) -> None:
    case = ComplianceCase.objects.get(pk=event.payload["case"])
    for order in held_orders_of_case(case):
        order_compliance_refuse(order=order, reason=event.payload.get("resolution") or "")


@subscriber("order.accepted", name="settlements.settle_accepted_order")
def settle_accepted_order(event: Event) -> None:
    order_settle(order=Order.objects.get(pk=event.payload["order"]))


@subscriber("listing.suspended", "listing.delisted", name="settlements.end_entitlements_of_product")
def end_entitlements_of_product(event: Event) -> None:
    """A product suspended or delisted by staff (or delisted by its provider): what was bought of it ends."""
    reason = Entitlement.EndReason.SUSPENDED if event.topic == "listing.suspended" else Entitlement.EndReason.DELISTED
    entitlements_end_for_product(product_id=event.payload["product"], reason=reason)


@subscriber("compliance.filing_revoked", "compliance.filing_expired", name="settlements.recheck_entitlements")
def recheck_entitlements(event: Event) -> None:
    """A filing of the exporter revoked or lapsed: its exports are decided again, and end unless still cleared."""
    entitlements_recheck_exporter(exporter_id=event.payload["exporter"])


@subscriber("deposit.booked", name="settlements.renew_lapsed_subscriptions")
def renew_lapsed_subscriptions(event: Event) -> None:
    """The buyer topped up: its lapsed subscriptions renew now if the cash pays them (within their grace)."""
    subscriptions_renew_for_firm(firm_id=event.payload["firm"])
