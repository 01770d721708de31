"""The meter: calls under an entitlement (the data gateway's pages, the sandbox's queries), counted per period.

In production each call is counted in a cache every process shares (one atomic increment in Redis:
METER_CACHE_URL, else CACHE_URL's), not by a database write: a counter row updated by every call would serialise
every call of the entitlement behind its row lock. The count goes to the period's `Usage` row in batches, as an
absolute value that only grows (`_checkpoint`):

- by the call whose count is a multiple of SETTLEMENT_METER_CHECKPOINT_CALLS (100);
- by the periodic task `settlements.checkpoint_meters`, every minute;
- by the period's close, which takes the count from the cache under the row's lock before charging it.

A counter the cache lost (a restart of a cache without persistence, an eviction) starts again from the last
checkpoint; the meter's Redis runs with `appendonly yes` and `maxmemory-policy noeviction` (README, production),
so that nothing counted is lost.

Without a shared cache (the embedded default: one process's memory would count apart from the others') the row is
the counter: each call is one conditional `UPDATE ... SET calls = calls + 1`, exact across processes and slower
(it serialises an entitlement's calls), which the embedded set-up does not mind.

The limit is checked by the same increment (`count > call_limit`: the call is refused with a 429 and uncounted),
so two processes can never both take the last call. The limit of a metered plan's period is what its usage
budget pays, the buyer's fee included; of any other plan, its included calls (a quota); no limit without either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.cache import BaseCache, caches
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.money import quantize
from listings.models import DeliveryMode, PricePlan

from ..models import Charge, Entitlement, Order, Usage
from ..selectors import Fees, fee_schedule_in_force, fees_for

log = logging.getLogger(__name__)

METERED_MODES = (DeliveryMode.API, DeliveryMode.SANDBOX)


def meter_cache() -> BaseCache:
    """The shared cache the meter counts in (the default one when the database counts: tests clear it freely)."""
    return caches[settings.SETTLEMENT_METER_CACHE or "default"]


def _key(usage_id: int) -> str:
    return f"settlements.meter:{usage_id}"


@dataclass(frozen=True)
class MeterTicket:
    """One call counted: `meter_undo` takes it back if the call then fails."""

    usage_id: int
    count: int


# --- The period and its limit ---------------------------------------------------------------------------------------


def _local_day(moment: datetime) -> date:
    return timezone.localdate(moment)


def _last_day(ends_at: datetime | None) -> date | None:
    """The last day (Asia/Shanghai) of a term ending at `ends_at` (the first instant after that day)."""
    return None if ends_at is None else _local_day(ends_at - timedelta(microseconds=1))


def _period(entitlement: Entitlement, order: Order, today: date) -> tuple[date, date | None, Charge | None]:
    """The usage period `today` falls in: a recurring plan's billing period (a metered plan's, with the usage
    budget held for it), a one-off purchase's whole term."""
    plan = order.snapshot["plan"]
    if plan["kind"] == PricePlan.Kind.ONE_OFF:
        return _local_day(entitlement.starts_at), _last_day(entitlement.ends_at), None
    kind = Charge.Kind.USAGE_BUDGET if plan["kind"] == PricePlan.Kind.METERED else Charge.Kind.PERIOD
    charge = (
        order.charges.filter(kind=kind, period_start__lte=today, period_end__gte=today).order_by("-sequence").first()
    )
    if charge is not None and charge.period_start is not None:
        return charge.period_start, charge.period_end, charge if kind == Charge.Kind.USAGE_BUDGET else None
    # A free period holds no charge: the entitlement's current period, counted back from its end.
    end = _last_day(entitlement.ends_at)
    if end is None:
        return _local_day(entitlement.starts_at), None, None
    months = 12 if plan["period"] == PricePlan.Period.YEAR else 1
    start = end + timedelta(days=1) - relativedelta(months=months)
    return max(start, _local_day(entitlement.starts_at)), end, None


def usage_cost(calls: int, *, usage: Usage, fees_of: Any) -> Fees:
    """The price and fees of `calls` calls in a period (those included are free): the calls beyond them at the
    unit price, rounded once to the currency's minor unit, and the fees of the schedule in force (`fees_of`)."""
    billable = max(0, calls - (usage.calls_included or 0))
    return fees_of(Decimal(billable) * (usage.unit_price or Decimal("0")))


def usage_fees_of(order: Order, day: date) -> Any:
    """The fees of usage charged for a period starting on `day`: the schedule in force then, as a function of the price."""
    schedule = fee_schedule_in_force(board=order.board, currency=order.currency, day=day)
    if schedule is None:
        raise ApplicationError(
            _("No fee schedule is in force for this board and currency: usage cannot be charged."),
            code="no_fee_schedule",
            status_code=409,
        )
    return lambda price: fees_for(price=quantize(price, order.currency), schedule=schedule, currency=order.currency)


def _affordable(budget: Decimal, included: int, unit_price: Decimal, fees_of: Any) -> int:
    """The most calls whose cost, the buyer's fee included, the budget pays (a binary search: cost only grows)."""

    def pays(extra: int) -> bool:
        fees = fees_of(Decimal(extra) * unit_price)
        return bool(fees.price + fees.buyer_fee <= budget)

    low, high = 0, int(budget / unit_price) + 1
    while low < high:
        middle = (low + high + 1) // 2
        if pays(middle):
            low = middle
        else:
            high = middle - 1
    return included + low


def _terms(entitlement: Entitlement, order: Order, start: date, budget: Charge | None) -> dict[str, Any]:
    plan = order.snapshot["plan"]
    metered = plan["kind"] == PricePlan.Kind.METERED
    included = plan["included_calls"] if metered else entitlement.calls_included
    unit_price = Decimal(plan["unit_price"]) if metered and plan["unit_price"] is not None else None
    if metered and unit_price:
        total = budget.total if budget is not None else Decimal("0.00")
        limit: int | None = _affordable(total, included or 0, unit_price, usage_fees_of(order, start))
    else:
        # A plan with included calls and no unit price: a quota. A metered plan with a free unit: no limit.
        limit = included if not metered else None
    return {"calls_included": included, "unit_price": unit_price, "call_limit": limit}


def usage_current(entitlement: Entitlement, *, now: datetime | None = None) -> Usage:
    """The entitlement's usage row for the period `now` falls in, made on its first call (with the period's terms,
    fixed from then on: the included calls, the unit price, the limit the budget pays)."""
    now = now or timezone.now()
    today = _local_day(now)
    # The hot path: the period's row exists (one indexed read).
    current = (
        Usage.objects.filter(entitlement_id=entitlement.pk, period_start__lte=today)
        .filter(Q(period_end__isnull=True) | Q(period_end__gte=today))
        .order_by("-period_start")
        .first()
    )
    if current is not None:
        return current
    order = Order.objects.select_related("board").get(pk=entitlement.order_id)
    start, end, budget = _period(entitlement, order, today)
    usage = Usage.objects.filter(entitlement_id=entitlement.pk, period_start=start).first()
    if usage is not None:
        return usage
    try:
        with transaction.atomic():
            return Usage.objects.create(
                entitlement_id=entitlement.pk,
                period_start=start,
                period_end=end,
                charge=None,
                **_terms(entitlement, order, start, budget),
            )
    except IntegrityError:  # made by a call at the same moment
        return Usage.objects.get(entitlement_id=entitlement.pk, period_start=start)


# --- Counting ---------------------------------------------------------------------------------------------------


def usage_calls(usage: Usage) -> int:
    """The calls of the period so far: what the cache counted, or the last checkpoint when it holds none."""
    if not settings.SETTLEMENT_METER_CACHE:
        return usage.calls
    counted = meter_cache().get(_key(usage.pk))
    return max(usage.calls, int(counted)) if counted is not None else usage.calls


def _refused(usage: Usage) -> ApplicationError:
    details = {
        "call_limit": usage.call_limit,
        "calls_included": usage.calls_included,
        "period_start": usage.period_start.isoformat(),
        "period_end": usage.period_end.isoformat() if usage.period_end else None,
    }
    if usage.unit_price:
        return ApplicationError(
            _("The usage budget held for this period is spent: no more calls can be paid for until the next period."),
            code="usage_budget_exhausted",
            status_code=429,
            details=details,
        )
    return ApplicationError(
        _("The calls included in this period are used up: the next period brings new ones."),
        code="quota_exhausted",
        status_code=429,
        details=details,
    )


def meter_call(entitlement: Entitlement, *, now: datetime | None = None) -> MeterTicket:
    """Count one call under the entitlement, or refuse it (429) when the period's limit is reached. The caller has
    checked that the entitlement is usable and the request valid: a refused or malformed request is not counted."""
    usage = usage_current(entitlement, now=now)
    if usage.closed_at is not None:  # the period was closed (charged): nothing more is counted in it
        raise _refused(usage)
    if not settings.SETTLEMENT_METER_CACHE:
        within = Q(call_limit__isnull=True) | Q(calls__lt=F("call_limit"))
        if not Usage.objects.filter(within, pk=usage.pk, closed_at__isnull=True).update(calls=F("calls") + 1):
            raise _refused(usage)
        return MeterTicket(usage_id=usage.pk, count=usage.calls + 1)
    cache, key = meter_cache(), _key(usage.pk)
    cache.add(key, usage.calls, timeout=None)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between the two: start again from the checkpoint
        cache.add(key, usage.calls, timeout=None)
        count = cache.incr(key)
    if usage.call_limit is not None and count > usage.call_limit:
        cache.decr(key)
        raise _refused(usage)
    if count % settings.SETTLEMENT_METER_CHECKPOINT_CALLS == 0:
        _checkpoint(usage, count)
    return MeterTicket(usage_id=usage.pk, count=count)


def meter_undo(ticket: MeterTicket) -> None:
    """The counted call failed (the engine's error, not the caller's): it is not charged."""
    if not settings.SETTLEMENT_METER_CACHE:
        Usage.objects.filter(pk=ticket.usage_id, closed_at__isnull=True, calls__gt=0).update(calls=F("calls") - 1)
        return
    # A checkpoint this very call wrote is taken back too (the row never holds more than the counter).
    Usage.objects.filter(pk=ticket.usage_id, closed_at__isnull=True, calls=ticket.count).update(calls=ticket.count - 1)
    try:
        meter_cache().decr(_key(ticket.usage_id))
    except ValueError:
        log.warning("meter: usage %s lost its counter before a call could be uncounted", ticket.usage_id)


def _checkpoint(usage: Usage, count: int) -> None:
    """Write the count to the usage row if it is more than the row holds (a checkpoint never lowers it; one taken
    after the period closed changes nothing)."""
    if usage.call_limit is not None:
        count = min(count, usage.call_limit)
    Usage.objects.filter(pk=usage.pk, closed_at__isnull=True, calls__lt=count).update(
        calls=count, checkpointed_at=timezone.now()
    )


def meters_checkpoint(*, today: date | None = None) -> int:
    """Write every open period's count from the cache to its row (a periodic task, every minute); how many moved."""
    if not settings.SETTLEMENT_METER_CACHE:
        return 0  # the rows are the counters
    today = today or timezone.localdate()
    open_usage = Usage.objects.filter(closed_at__isnull=True).filter(
        Q(period_end__isnull=True) | Q(period_end__gte=today - timedelta(days=1))
    )
    cache, moved = meter_cache(), 0
    for usage in open_usage.only("pk", "calls", "call_limit").iterator():
        counted = cache.get(_key(usage.pk))
        if counted is not None and int(counted) > usage.calls:
            _checkpoint(usage, int(counted))
            moved += 1
    return moved


def meter_final_count(usage: Usage) -> int:
    """The period's count at its close (the row locked by the caller): the cache's, else the last checkpoint."""
    count = usage_calls(usage)
    return min(count, usage.call_limit) if usage.call_limit is not None else count


def meter_forget(usage: Usage) -> None:
    """The period is closed: its counter is no longer needed (after the close's transaction commits)."""
    if settings.SETTLEMENT_METER_CACHE:
        transaction.on_commit(lambda: meter_cache().delete(_key(usage.pk)))
