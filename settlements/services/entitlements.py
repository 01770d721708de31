"""Entitlements: an order's right to the data, made when the order is released and ended, for good, when the order is
cancelled or refunded, its term runs out, the product is suspended or delisted, compliance revokes or lets lapse the
filing its export relied on, or staff revoke it.

Every end is one service here (`entitlement_end`): the core's compare-and-swap from `active`, the audit record, the
outbox event `entitlement.ended`, in the caller's transaction; an entitlement that has ended already is left as it
is, so that every path may be taken twice (an event relayed again, a periodic task run twice). The access paths
(download links, the data gateway, the sandbox) ask `Entitlement.usable_at` and the product's listing status, so
that they refuse at once, whatever the relay's delay.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from exchange.exceptions import InvalidTransition
from exchange.models import User
from exchange.outbox import outbox_publish
from exchange.services import audit_record
from exchange.transitions import transition
from listings.models import DeliveryMode, PricePlan

from ..models import Entitlement, Order
from ..selectors import period_end
from .credentials import credentials_revoke_for_entitlement

log = logging.getLogger(__name__)

E = Entitlement.Status
Why = Entitlement.EndReason
# Decisions under which the data does not leave the country (or the trade does not happen): no filing to rely on.
NO_EXPORT = ("no_transfer", "prohibited")


def day_end(day: Any) -> datetime:
    """The first instant after `day` in the exchange's time zone (Asia/Shanghai): a period ending on `day` ends then."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), timezone.get_default_timezone())


def entitlement_term(order: Order, *, starts_at: datetime) -> datetime | None:
    """Until when an order's entitlement lasts from `starts_at` (its release): a one-off purchase, the licence's
    term in months (no end if the licence has none); a subscription or metered plan, its first billing period from
    the day it starts, to the end of the period's last day (Asia/Shanghai). The release moves the first period's
    charge to the same dates (`orders._release`): a buyer held by compliance does not pay for the days it waited."""
    plan = order.snapshot["plan"]  # as bought: the plan's and licence's later changes do not alter it
    if plan["kind"] == PricePlan.Kind.ONE_OFF:
        months = order.snapshot["licence"]["terms"].get("duration_months")
        return starts_at + relativedelta(months=int(months)) if months else None
    return day_end(period_end(timezone.localdate(starts_at), plan["period"]))


def entitlement_start(order: Order, *, now: datetime) -> Entitlement:
    """The entitlement of an order being released (in the release's transaction; its audit record is the
    release's). One per order: the table's one-to-one key refuses a second."""
    plan = order.snapshot["plan"]
    entitlement = Entitlement(
        order=order,
        buyer_firm_id=order.buyer_firm_id,
        product_id=order.product_id,
        revision_id=order.revision_id,
        # Recurring plans (a subscription, a metered plan's base fee and budget) renew each period, and follow the
        # product's later revisions.
        follows_revisions=plan["kind"] != PricePlan.Kind.ONE_OFF,
        renews=plan["kind"] != PricePlan.Kind.ONE_OFF,
        delivery_mode=order.delivery_mode,
        starts_at=now,
        ends_at=entitlement_term(order, starts_at=now),
        # Calls are metered on the data gateway and in the sandbox (each query a call).
        calls_included=plan["included_calls"]
        if order.delivery_mode in (DeliveryMode.API, DeliveryMode.SANDBOX)
        else None,
    )
    entitlement.save(force_insert=True)
    outbox_publish(
        topic="entitlement.started",
        key=str(entitlement.pk),
        payload={
            "entitlement": entitlement.pk,
            "order": order.pk,
            "buyer_firm": order.buyer_firm_id,
            "product": order.product_id,
            "delivery_mode": entitlement.delivery_mode,
            "starts_at": entitlement.starts_at.isoformat(),
            "ends_at": entitlement.ends_at.isoformat() if entitlement.ends_at else None,
        },
    )
    return entitlement


STALE = gettext_lazy("This entitlement was changed meanwhile; reload it and try again.")


def entitlement_lapse(entitlement: Entitlement, *, grace_until: datetime, needed: str, available: str) -> Entitlement:
    """A subscription's renewal could not be paid (`needed` of the currency, `available` in cash): not usable until
    it is, by `grace_until` (then it ends)."""
    entitlement = transition(
        entitlement,
        to=E.LAPSED,
        allowed=Entitlement.ALLOWED,
        actor=None,
        verb="settlements.entitlement_lapsed",
        payload={"order": entitlement.order_id, "grace_until": grace_until.isoformat(), "needed": needed},
        extra_fields={"grace_until": grace_until},
        stale_message=str(STALE),
    )
    outbox_publish(
        topic="entitlement.lapsed",
        key=str(entitlement.pk),
        payload={
            "entitlement": entitlement.pk,
            "order": entitlement.order_id,
            "buyer_firm": entitlement.buyer_firm_id,
            "grace_until": grace_until.isoformat(),
            "needed": needed,
            "available": available,
        },
    )
    return entitlement


def entitlement_extend(entitlement: Entitlement, *, ends_at: datetime) -> Entitlement:
    """A subscription's next period is paid: usable to `ends_at`, active again if it had lapsed."""
    if entitlement.status == E.LAPSED:
        entitlement = transition(
            entitlement,
            to=E.ACTIVE,
            allowed=Entitlement.ALLOWED,
            actor=None,
            verb="settlements.entitlement_renewed",
            payload={"order": entitlement.order_id, "ends_at": ends_at.isoformat()},
            extra_fields={"grace_until": None, "ends_at": ends_at},
            stale_message=str(STALE),
        )
    else:
        Entitlement.objects.filter(pk=entitlement.pk).update(ends_at=ends_at)
        entitlement.ends_at = ends_at
    outbox_publish(
        topic="entitlement.renewed",
        key=str(entitlement.pk),
        payload={"entitlement": entitlement.pk, "order": entitlement.order_id, "ends_at": ends_at.isoformat()},
    )
    return entitlement


def entitlement_end(
    entitlement: Entitlement, *, reason: str, actor: User | None = None, note: str = "", now: datetime | None = None
) -> Entitlement:
    """End an active or lapsed entitlement for `reason` (an `Entitlement.EndReason`), in the caller's transaction; one
    already ended is left as it is (its first end stands)."""
    if entitlement.status == E.ENDED:
        return entitlement
    now = now or timezone.now()
    entitlement = transition(
        entitlement,
        to=E.ENDED,
        allowed=Entitlement.ALLOWED,
        actor=actor,
        verb="settlements.entitlement_ended",
        payload={"order": entitlement.order_id, "reason": reason, **({"note": note} if note else {})},
        extra_fields={"ended_at": now, "end_reason": reason, "end_note": note, "grace_until": None},
        stale_message=str(STALE),
    )
    credentials_revoke_for_entitlement(entitlement, actor=actor)  # the data gateway's key ends with it
    outbox_publish(
        topic="entitlement.ended",
        key=str(entitlement.pk),
        payload={
            "entitlement": entitlement.pk,
            "order": entitlement.order_id,
            "buyer_firm": entitlement.buyer_firm_id,
            "product": entitlement.product_id,
            "reason": reason,
            "ended_at": now.isoformat(),
        },
    )
    return entitlement


def _live(queryset: Any) -> list[Entitlement]:
    # Locked, so that two ends of one entitlement at once (an event relayed twice, staff and the relay) queue here
    # and the second finds it ended.
    return list(queryset.filter(status__in=Entitlement.LIVE).select_for_update(of=("self",)).order_by("pk"))


def entitlement_end_for_order(order: Order, *, reason: str, actor: User | None, note: str = "") -> None:
    """The order was cancelled or refunded (in its transaction): its entitlement, if it was released, ends."""
    for entitlement in _live(Entitlement.objects.filter(order=order)):
        entitlement_end(entitlement, reason=reason, actor=actor, note=note)


def entitlements_end_due(*, now: datetime | None = None) -> list[int]:
    """End every entitlement whose time is up (a periodic task), each in its own transaction: a one-off licence whose
    term ran out expires; a subscription the buyer stopped ends with its last paid period; a lapsed subscription whose
    grace passed unpaid ends as lapsed. (A renewing subscription at its period's end is renewed, or lapses, by
    `settlements.services.orders.subscriptions_renew_due`.) Run twice, the second run finds nothing."""
    now = now or timezone.now()
    run_out = Q(status=E.ACTIVE, renews=False, ends_at__lte=now)
    unpaid = Q(status=E.LAPSED, grace_until__lte=now)
    due = Entitlement.objects.filter(run_out | unpaid).order_by("pk")
    ended = []
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            entitlement = Entitlement.objects.select_for_update().get(pk=pk)
            if entitlement.status == E.ACTIVE and not entitlement.renews and entitlement.ends_at:
                if entitlement.ends_at > now:
                    continue
                reason = Why.STOPPED if entitlement.follows_revisions else Why.EXPIRED
                entitlement_end(entitlement, reason=reason, now=now)
            elif entitlement.status == E.LAPSED and entitlement.grace_until and entitlement.grace_until <= now:
                entitlement_end(entitlement, reason=Why.LAPSED, now=now)
            else:
                continue
            ended.append(pk)
    return ended


def entitlement_stop_renewal(*, entitlement: Entitlement, actor: User) -> Entitlement:
    """The buyer stops its subscription (in the caller's transaction, the entitlement locked): no further period is
    charged and the entitlement ends with the period paid; a lapsed one ends now."""
    if not entitlement.follows_revisions or entitlement.status == E.ENDED:
        raise InvalidTransition(_("Only a subscription that has not ended can be stopped."), code="not_renewing")
    if entitlement.status == E.LAPSED:
        return entitlement_end(entitlement, reason=Why.STOPPED, actor=actor)
    if not entitlement.renews:
        return entitlement  # stopped already
    Entitlement.objects.filter(pk=entitlement.pk).update(renews=False)
    entitlement.renews = False
    audit_record(
        actor=actor,
        verb="settlements.entitlement_renewal_stopped",
        target=entitlement,
        payload={
            "order": entitlement.order_id,
            "ends_at": entitlement.ends_at.isoformat() if entitlement.ends_at else None,
        },
    )
    return entitlement
