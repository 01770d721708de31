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
from datetime import date, datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from compliance.selectors import CLEARED, trade_precheck
from exchange.exceptions import ApplicationError, InvalidTransition, require_reason
from exchange.models import User
from exchange.outbox import outbox_publish
from exchange.transitions import transition
from listings.models import DeliveryMode, PricePlan

from ..models import Charge, Entitlement, Order
from ..permissions import require_entitlement_revoker

log = logging.getLogger(__name__)

E = Entitlement.Status
Why = Entitlement.EndReason
# Decisions under which the data does not leave the country (or the trade does not happen): no filing to rely on.
NO_EXPORT = ("no_transfer", "prohibited")


def day_end(day: Any) -> datetime:
    """The first instant after `day` in the exchange's time zone (Asia/Shanghai): a period ending on `day` ends then."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), timezone.get_default_timezone())


def entitlement_term(order: Order, *, starts_at: datetime) -> datetime | None:
    """Until when an order's entitlement lasts: a subscription's or metered plan's paid period (to the end of its
    last day), a one-off purchase's licence term in months from its start, or no end (a licence without one)."""
    plan = order.snapshot["plan"]  # as bought: the plan's and licence's later changes do not alter it
    if plan["kind"] == PricePlan.Kind.ONE_OFF:
        months = order.snapshot["licence"]["terms"].get("duration_months")
        return starts_at + relativedelta(months=int(months)) if months else None
    periods = [
        c["period_end"] for c in order.snapshot["charges"] if c["kind"] == Charge.Kind.PERIOD and c["period_end"]
    ]
    if periods:
        return day_end(date.fromisoformat(max(periods)))
    # A free subscription holds no charge: its first period from the day it starts.
    months = 12 if plan["period"] == PricePlan.Period.YEAR else 1
    return day_end(timezone.localdate(starts_at) + relativedelta(months=months) - timedelta(days=1))


def entitlement_start(order: Order, *, now: datetime) -> Entitlement:
    """The entitlement of an order being released (in the release's transaction; its audit record is the
    release's). One per order: the table's one-to-one key refuses a second."""
    plan = order.snapshot["plan"]
    entitlement = Entitlement(
        order=order,
        buyer_firm_id=order.buyer_firm_id,
        product_id=order.product_id,
        revision_id=order.revision_id,
        follows_revisions=plan["kind"] == PricePlan.Kind.SUBSCRIPTION,
        delivery_mode=order.delivery_mode,
        starts_at=now,
        ends_at=entitlement_term(order, starts_at=now),
        calls_included=plan["included_calls"] if order.delivery_mode == DeliveryMode.API else None,
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


STALE = _("This entitlement was changed meanwhile; reload it and try again.")


def entitlement_lapse(entitlement: Entitlement, *, grace_until: datetime, note: str) -> Entitlement:
    """A subscription's renewal could not be paid: not usable until it is, by `grace_until` (then it ends)."""
    entitlement = transition(
        entitlement,
        to=E.LAPSED,
        allowed=Entitlement.ALLOWED,
        actor=None,
        verb="settlements.entitlement_lapsed",
        payload={"order": entitlement.order_id, "grace_until": grace_until.isoformat(), "note": note},
        extra_fields={"grace_until": grace_until},
        stale_message=STALE,
    )
    outbox_publish(
        topic="entitlement.lapsed",
        key=str(entitlement.pk),
        payload={
            "entitlement": entitlement.pk,
            "order": entitlement.order_id,
            "buyer_firm": entitlement.buyer_firm_id,
            "grace_until": grace_until.isoformat(),
            "note": note,
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
            stale_message=STALE,
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
        stale_message=STALE,
    )
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


@transaction.atomic
def entitlements_end_for_product(*, product_id: int, reason: str, note: str = "") -> list[int]:
    """The product was suspended or delisted: every active entitlement to it ends (an outbox subscriber)."""
    ended = _live(Entitlement.objects.filter(product_id=product_id))
    for entitlement in ended:
        entitlement_end(entitlement, reason=reason, note=note)
    return [e.pk for e in ended]


@transaction.atomic
def entitlements_recheck_exporter(*, exporter_id: int, note: str = "") -> list[int]:
    """A filing of the exporter was revoked or lapsed: every active entitlement to its data that is an export is
    decided again by the compliance gate as of today, and ends unless it is still cleared (an outbox subscriber).
    The gate decides trades of the product's listed revision: an entitlement to an earlier revision is decided as
    a trade of the listed one (the exporter's filings are what changed, not the data)."""
    ended = []
    candidates = _live(
        Entitlement.objects.filter(product__provider_id=exporter_id)
        .exclude(order__assessment__decision__in=NO_EXPORT)
        .select_related("product__provider", "product__board", "product__listed_revision", "buyer_firm")
    )
    for entitlement in candidates:
        try:
            clearance = trade_precheck(
                product=entitlement.product, buyer_firm=entitlement.buyer_firm, delivery=entitlement.delivery_mode
            )
        except ApplicationError as exc:
            # No trade of the product to decide now: not listed (its own event ends what was bought of it), or its
            # listed revision no longer offers this delivery or destination, which says nothing about the filing.
            log.warning("entitlement %s not re-decided after a filing change: %s (%s)", entitlement.pk, exc, exc.code)
            continue
        if clearance.status != CLEARED:
            entitlement_end(entitlement, reason=Why.COMPLIANCE, note=note)
            ended.append(entitlement.pk)
    return ended


def entitlements_end_due(*, now: datetime | None = None) -> list[int]:
    """End every entitlement whose time is up (a periodic task), each in its own transaction: a one-off licence whose
    term ran out expires; a lapsed subscription whose grace period passed unpaid ends as lapsed. (A subscription
    at its period's end is renewed, or lapses, by `settlements.services.orders.subscriptions_renew_due`.) Run twice,
    the second run finds nothing."""
    now = now or timezone.now()
    expired = Q(status=E.ACTIVE, follows_revisions=False, ends_at__lte=now)
    unpaid = Q(status=E.LAPSED, grace_until__lte=now)
    due = Entitlement.objects.filter(expired | unpaid).order_by("pk")
    ended = []
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            entitlement = Entitlement.objects.select_for_update().get(pk=pk)
            if entitlement.status == E.ACTIVE and not entitlement.follows_revisions and entitlement.ends_at:
                if entitlement.ends_at > now:
                    continue
                entitlement_end(entitlement, reason=Why.EXPIRED, now=now)
            elif entitlement.status == E.LAPSED and entitlement.grace_until and entitlement.grace_until <= now:
                entitlement_end(entitlement, reason=Why.LAPSED, note=_("The renewal was not paid in time."), now=now)
            else:
                continue
            ended.append(pk)
    return ended


@transaction.atomic
def entitlement_revoke(*, entitlement: Entitlement, actor: User, reason: str) -> Entitlement:
    """Staff revoke an entitlement (a breach of the licence, a court order), with the reason both firms read."""
    require_entitlement_revoker(actor)
    reason = require_reason(reason, _("Say why the entitlement is revoked: the buyer reads it."))
    entitlement = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
    if entitlement.status == E.ENDED:
        raise InvalidTransition(_("This entitlement has ended already."))
    return entitlement_end(entitlement, reason=Why.REVOKED, actor=actor, note=reason)
