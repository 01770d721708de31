"""What the money tests compare: the whole state the money services write, as one value (`state()`), and the
exchange's money identity per currency (`money_identity_problems()`).

`state()` is how a test says "a refusal, a crash or a second run changed nothing": every row count the services
write, every cached balance, every status that money follows, the compliance counters and the outbox.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from compliance.models import Assessment, ComplianceCase, ExportCounter, ProductExport
from exchange.models import AuditEvent, OutboxDelivery, OutboxEvent
from settlements.models import (
    AccessRequest,
    Account,
    Charge,
    Deposit,
    JournalEntry,
    Order,
    OrderEvent,
    Posting,
    Withdrawal,
)

ZERO = Decimal("0.00")


def rows(model: type[Any], *fields: str) -> list[tuple[Any, ...]]:
    return list(model.objects.order_by("pk").values_list(*fields))


def state() -> dict[str, Any]:
    """Everything the money services write, comparable with ==."""
    return {
        "counts": {
            model.__name__: model.objects.count()
            for model in (
                Order,
                OrderEvent,
                Charge,
                JournalEntry,
                Posting,
                Deposit,
                Withdrawal,
                AccessRequest,
                Assessment,
                ComplianceCase,
                OutboxEvent,
                OutboxDelivery,
                AuditEvent,
            )
        },
        "balances": rows(Account, "pk", "firm_id", "kind", "currency", "balance"),
        "orders": rows(Order, "pk", "status", "case_id"),
        "charges": rows(Charge, "pk", "status", "refunded", "provider_net", "fee_collected"),
        "withdrawals": rows(Withdrawal, "pk", "status", "approved_by", "second_approved_by"),
        "cases": rows(ComplianceCase, "pk", "status"),
        "counters": rows(ExportCounter, "pk", "personal_info_subjects", "sensitive_personal_info_subjects"),
        "product_exports": rows(ProductExport, "pk", "personal_info_subjects", "trades"),
        "outbox_pending": list(
            OutboxEvent.objects.filter(published_at__isnull=True).order_by("pk").values_list("pk", "topic")
        ),
    }


def money_identity() -> dict[str, dict[str, Decimal]]:
    """Per currency: money in (deposits booked), money out (withdrawals paid), what members hold (every member
    account) and what the exchange earned (fee revenue). Summed here in Decimal, not by the database (SQLite sums
    decimals as floats)."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for currency, amount in Deposit.objects.values_list("currency", "amount"):
        sums[currency]["in"] += amount
    for currency, amount in Withdrawal.objects.filter(status=Withdrawal.Status.PAID).values_list("currency", "amount"):
        sums[currency]["out"] += amount
    for firm_id, kind, currency, balance in Account.objects.values_list("firm_id", "kind", "currency", "balance"):
        if firm_id is not None:
            sums[currency]["members"] += balance
        elif kind == Account.Kind.FEE_REVENUE:
            sums[currency]["fees"] += balance
        else:
            sums[currency]["bank"] += balance
    return {currency: dict(values) for currency, values in sums.items()}


def money_identity_problems() -> list[str]:
    """Money in == money out + member balances + fee revenue, per currency (and the bank holds the difference)."""
    problems = []
    for currency, s in money_identity().items():
        money_in, out = s.get("in", ZERO), s.get("out", ZERO)
        members, fees, bank = s.get("members", ZERO), s.get("fees", ZERO), s.get("bank", ZERO)
        if money_in != out + members + fees:
            problems.append(f"{currency}: in {money_in} != out {out} + members {members} + fees {fees}")
        if bank != money_in - out:
            problems.append(f"{currency}: the bank holds {bank}, in - out is {money_in - out}")
    return problems
