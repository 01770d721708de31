"""What settlements does when other parts of the exchange report an event (exchange.outbox): compliance's
decisions on the cases that hold orders, and the settlement that follows an order's acceptance. Each handler is
idempotent (the services leave an order already moved as it is); the relay delivers each event once per handler
and retries it when the handler fails."""

from __future__ import annotations

from compliance.models import ComplianceCase
from exchange.outbox import Event, subscriber

from .models import Order
from .services.orders import held_orders_of_case, order_compliance_recheck, order_compliance_refuse, order_settle


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
