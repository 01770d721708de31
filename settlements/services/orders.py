"""Orders: placed through the compliance gate with their money in escrow, then released, delivered, accepted and
settled to the provider, or cancelled, refused by compliance, disputed and refunded.

Every transition is one service here: it checks who may act, moves the status with the core's compare-and-swap
(`exchange.transitions.transition`), writes the order's timeline (OrderEvent) and the audit trail, posts the
money through the one posting service (`.ledger.entry_post`) and publishes the order's event to the outbox, all in
one transaction.

Locks, always in this order so that two transactions never wait on each other in a circle: the order's row (an
order already placed), the accounts its money moves (in primary-key order, all of them at once: `_lock_accounts`,
the posting service), the exporter's yearly counter and filings (by the gate), and last the audit trail's head row,
which every status move writes (so the accounts are locked before the status moves, never after). The product and
the plan are share-locked first (orders do not wait for each other, only a suspension or a retirement for them).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from compliance.models import ComplianceCase
from compliance.selectors import CLEARED, HELD, PROHIBITED, trade_precheck
from compliance.services.counters import export_record
from compliance.services.gate import trade_decide
from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed, require_reason
from exchange.models import Membership, User
from exchange.money import allocate
from exchange.outbox import outbox_publish
from exchange.selectors import user_membership
from exchange.services import audit_record
from exchange.transitions import assert_can_transition, transition
from listings.models import ListingStatus, PricePlan

from ..models import AccessRequest, Account, Charge, Entitlement, JournalEntry, Order, OrderEvent, Usage
from ..permissions import require_entitlement_revoker, require_refund_clerk
from ..selectors import (
    OrderTerms,
    currency_not_held,
    deliverable_dataset,
    fee_schedule_in_force,
    fees_for,
    order_terms,
    period_end,
)
from .entitlements import (
    day_end,
    entitlement_end,
    entitlement_end_for_order,
    entitlement_extend,
    entitlement_lapse,
    entitlement_start,
    entitlement_stop_renewal,
)
from .ledger import InsufficientFunds, Leg, account_for, accounts_lock, entry_post, exchange_account
from .metering import meter_final_count, meter_forget, usage_cost, usage_fees_of

log = logging.getLogger(__name__)
S = Order.Status
# Decisions that are no export to count (the data does not leave, or the trade does not happen).
NOT_AN_EXPORT = ("no_transfer", "prohibited")


class OrderRefused(ApplicationError):
    """The compliance engine prohibits the trade: nothing was written, no money moved."""

    code = "prohibited"
    status_code = 422


# --- The timeline and the outbox ---------------------------------------------------------------------------------


def _event(order: Order, kind: str, actor: User | None, *, old: str = "", new: str = "", **data: Any) -> None:
    OrderEvent.objects.create(order=order, kind=kind, actor=actor, old_status=old, new_status=new, data=data)


def _publish(order: Order, topic: str, **extra: Any) -> None:
    outbox_publish(
        topic=f"order.{topic}",
        key=str(order.pk),
        payload={
            "order": order.pk,
            "reference": order.reference,
            "status": order.status,
            "buyer_firm": order.buyer_firm_id,
            "provider_firm": order.provider_firm_id,
            "product": order.product_id,
            "currency": order.currency,
            "price": str(order.price),
            **extra,
        },
    )


def _move(
    order: Order,
    to: str,
    *,
    actor: User | None,
    verb: str,
    why: str = "",
    audit: dict[str, Any] | None = None,
    **fields: Any,
) -> Order:
    """The order's status along an allowed edge, with its timeline row and audit row, in the caller's transaction.
    `why` is recorded on both and kept as the order's `reason`; `audit`, more of what the audit row records."""
    if why:
        fields["reason"] = why

    def record(order: Order, old: str, new: str) -> None:
        _event(order, new, actor, old=old, new=new, **({"reason": why} if why else {}))

    return transition(
        order,
        to=to,
        allowed=Order.ALLOWED,
        actor=actor,
        verb=f"settlements.order_{verb}",
        payload={"reference": order.reference, **({"reason": why} if why else {}), **(audit or {})},
        extra_fields=fields,
        record=record,
        stale_message=_("This order was changed meanwhile; reload it and try again."),
    )


# --- Who may act on an order ---------------------------------------------------------------------------------------

ACTING_ROLES = (Membership.Role.FIRM_ADMIN, Membership.Role.TRADER)


def _require_side(actor: User, firm_id: int, message: str) -> None:
    membership = user_membership(actor)
    if membership is None or membership.firm_id != firm_id or membership.role not in ACTING_ROLES:
        raise NotAllowed(message)


def may_act_as_buyer(user: Any, order: Order) -> bool:
    membership = user_membership(user)
    return membership is not None and membership.firm_id == order.buyer_firm_id and membership.role in ACTING_ROLES


def may_act_as_provider(user: Any, order: Order) -> bool:
    membership = user_membership(user)
    return membership is not None and membership.firm_id == order.provider_firm_id and membership.role in ACTING_ROLES


# --- Money of charges -------------------------------------------------------------------------------------------


def _fund(charge: Charge, actor: User | None, *, cash: Account, escrow: Account) -> None:
    """Move the charge's total from the buyer's cash to its escrow (the order's two accounts, locked by the caller)."""
    order = charge.order
    entry_post(
        kind=JournalEntry.Kind.FUNDING,
        reference=f"charge:{charge.pk}",
        legs=[Leg(cash, -charge.total), Leg(escrow, charge.total)],
        actor=actor,
        memo=_("%(order)s: %(charge)s held in escrow")
        % {"order": order.reference, "charge": charge.get_kind_display()},
        charge=charge,
    )


def _close_charge(
    charge: Charge,
    *,
    refund: Decimal,
    actor: User | None,
    memo: str,
    split: tuple[Decimal, Decimal] | None = None,
) -> None:
    """End a held charge: `refund` back to the buyer's cash, the rest to the provider and the exchange's fees in
    proportion to what the charge held for each (exchange.money.allocate: the parts sum to the rest exactly), or
    as `split` says (the provider's net, the fees): a usage budget's, whose fees are those of the usage charged
    from it at its period's end (settlements.services.metering)."""
    charge = Charge.objects.select_for_update().select_related("order").get(pk=charge.pk)
    if charge.status != Charge.Status.HELD:
        return  # closed by an earlier run of the same operation
    order = charge.order
    currency = charge.currency
    rest = charge.total - refund
    if split is not None:
        provider_net, fees = split
        assert provider_net >= 0 and fees >= 0 and provider_net + fees == rest, "a split accounts for the rest"
    else:
        # A usage budget's fees are not known when it is funded (it holds none): only a split pays any of it out.
        assert charge.kind != Charge.Kind.USAGE_BUDGET or rest == 0, "a usage budget is paid out only by a split"
        provider_net, fees = (
            allocate(rest, [charge.price - charge.provider_fee, charge.provider_fee + charge.buyer_fee], currency)
            if rest > 0
            else [Decimal("0.00"), Decimal("0.00")]
        )
    escrow = account_for(firm=order.buyer_firm, kind=Account.Kind.ESCROW, currency=currency)
    if refund > 0:
        cash = account_for(firm=order.buyer_firm, kind=Account.Kind.CASH, currency=currency)
        entry_post(
            kind=JournalEntry.Kind.REFUND,
            reference=f"charge:{charge.pk}",
            legs=[Leg(escrow, -refund), Leg(cash, refund)],
            actor=actor,
            memo=memo,
            charge=charge,
        )
    if rest > 0:
        legs = [Leg(escrow, -rest)]
        if provider_net:
            legs.append(
                Leg(account_for(firm=order.provider_firm, kind=Account.Kind.PAYABLE, currency=currency), provider_net)
            )
        if fees:
            legs.append(Leg(exchange_account(kind=Account.Kind.FEE_REVENUE, currency=currency), fees))
        entry_post(
            kind=JournalEntry.Kind.SETTLEMENT,
            reference=f"charge:{charge.pk}",
            legs=legs,
            actor=actor,
            memo=memo,
            charge=charge,
        )
    status = Charge.Status.REFUNDED if rest == 0 else Charge.Status.SETTLED
    Charge.objects.filter(pk=charge.pk, status=Charge.Status.HELD).update(
        status=status, refunded=refund, provider_net=provider_net, fee_collected=fees, closed_at=timezone.now()
    )


def _return_all(order: Order, actor: User | None, memo: str) -> Decimal:
    """Every charge the order still holds back to the buyer's cash; what was returned."""
    returned = Decimal("0.00")
    for charge in order.charges.filter(status=Charge.Status.HELD).order_by("pk"):
        _close_charge(charge, refund=charge.total, actor=actor, memo=memo)
        returned += charge.total
    return returned


def _lock_accounts(order: Order, *, settling: bool = False) -> None:
    """Lock the accounts an operation on the order will move, in primary-key order, before it moves the order's
    status: the buyer's cash and escrow, and when part of the money goes on to the provider (`settling`) its payable
    and the fee revenue. A status move writes the audit trail, whose head row every audited write holds until its
    transaction ends, and a placement locks the buyer's accounts first and audits last: locking the accounts only
    after the move deadlocked with the buyer's next order."""
    accounts = list(
        Account.objects.filter(
            firm_id=order.buyer_firm_id, currency=order.currency, kind__in=[Account.Kind.CASH, Account.Kind.ESCROW]
        )
    )
    if settling:
        accounts += [
            account_for(firm=order.provider_firm, kind=Account.Kind.PAYABLE, currency=order.currency),
            exchange_account(kind=Account.Kind.FEE_REVENUE, currency=order.currency),
        ]
    accounts_lock(accounts)


def _buyer_accounts_lock(firm: Any, currency: str) -> tuple[Account, Account]:
    """The buyer's cash and escrow in the currency, locked in primary-key order (as `accounts_lock`), read once
    the locks are held; `currency_not_held` if the firm holds no cash in it, and the escrow opened first if this
    is the firm's first order in the currency."""
    kinds = (Account.Kind.CASH, Account.Kind.ESCROW)

    def locked() -> dict[str, Account]:
        rows = Account.objects.select_for_update().filter(firm=firm, currency=currency, kind__in=kinds).order_by("pk")
        return {account.kind: account for account in rows}

    accounts = locked()
    if Account.Kind.CASH not in accounts:
        raise currency_not_held(currency)
    if len(accounts) < len(kinds):
        for kind in kinds:
            account_for(firm=firm, kind=kind, currency=currency)
        accounts = locked()
    return accounts[Account.Kind.CASH], accounts[Account.Kind.ESCROW]


# --- Placing an order ---------------------------------------------------------------------------------------------


def _snapshot(terms: OrderTerms, clearance: Any) -> dict[str, Any]:
    revision, plan, product = terms.revision, terms.plan, terms.product
    assessment = clearance.decided.assessment
    return {
        "product": {"id": product.pk, "board": product.board.code, "provider": product.provider_id},
        "revision": {
            "number": revision.number,
            "title_en": revision.title_en,
            "title_zh": revision.title_zh,
            "delivery_modes": revision.delivery_modes,
            "requires_approval": revision.requires_approval,
        },
        "plan": {
            "id": plan.pk,
            "name_en": plan.name_en,
            "name_zh": plan.name_zh,
            "kind": plan.kind,
            "period": plan.period,
            "currency": plan.currency,
            "amount": str(plan.amount),
            "included_calls": plan.included_calls,
            "unit_price": None if plan.unit_price is None else str(plan.unit_price),
            "private": plan.is_private,
        },
        "licence": {"en": revision.licence_en, "zh": revision.licence_zh, "terms": revision.licence_terms},
        "fees": terms.schedule.snapshot(),
        "charges": [
            {
                "kind": c.kind,
                "price": str(c.fees.price),
                "buyer_fee": str(c.fees.buyer_fee),
                "provider_fee": str(c.fees.provider_fee),
                "period_start": c.period_start.isoformat() if c.period_start else None,
                "period_end": c.period_end.isoformat() if c.period_end else None,
            }
            for c in terms.charges
        ],
        "stated": {"intended_use": terms.intended_use, "destination": terms.destination},
        "compliance": {
            "assessment": assessment.pk,
            "status": clearance.status,
            "decision": assessment.decision,
            "rules": assessment.rules,
            "reasons": assessment.reasons,
            "rule_version": assessment.rule_version,
            "missing": clearance.missing,
            "case": clearance.case.pk if clearance.case else None,
        },
    }


@transaction.atomic
def order_place(
    *,
    actor: User,
    product_id: Any,
    plan_id: Any,
    delivery_mode: str,
    intended_use: str = "",
    destination: str = "",
    usage_budget: Decimal | None = None,
) -> Order:
    """Place an order: check it, move its money from the buyer's cash to escrow and let the compliance gate decide,
    in one transaction. Prohibited: refused before any money moves (nothing is written). Cleared: released, and the
    export counted. Held: waits in `compliance_hold` with the gate's case."""
    terms = order_terms(
        user=actor,
        product_id=product_id,
        plan_id=plan_id,
        delivery_mode=delivery_mode,
        intended_use=intended_use,
        destination=destination,
        usage_budget=usage_budget,
        for_update=True,
    )
    buyer, product, currency = terms.buyer_firm, terms.product, terms.currency
    cash = escrow = None
    if terms.total > 0:
        # The buyer's cash and escrow, locked first (the posting service locks the same rows, in the same order):
        # of two orders against one balance, the second waits here and then sees what the first left.
        cash, escrow = _buyer_accounts_lock(buyer, currency)
        if cash.balance < terms.total:
            raise InsufficientFunds(
                _("Not enough cash: %(total)s %(currency)s needed, %(balance)s available.")
                % {"total": terms.total, "currency": currency, "balance": cash.balance},
                details={"needed": str(terms.total), "available": str(cash.balance), "currency": currency},
            )
    clearance = trade_decide(product=product, buyer_firm=buyer, delivery=terms.delivery_mode, as_of=terms.day)
    if clearance.status == PROHIBITED:
        raise OrderRefused(
            _("The compliance rules prohibit this trade."),
            details={
                "decision": clearance.decision["decision"],
                "rules": clearance.decision["rules"],
                "reasons": clearance.decision["reasons"],
                "missing": clearance.missing,
            },
        )
    assert clearance.decided is not None
    order = Order(
        buyer_firm=buyer,
        placed_by=actor,
        provider_firm=product.provider,
        board=product.board,
        product=product,
        revision=terms.revision,
        plan=terms.plan,
        currency=currency,
        price=terms.price,
        buyer_fee=terms.buyer_fee,
        provider_fee=terms.provider_fee,
        usage_budget=terms.usage_budget,
        delivery_mode=terms.delivery_mode,
        intended_use=terms.intended_use,
        destination=terms.destination,
        snapshot=_snapshot(terms, clearance),
        assessment=clearance.decided.assessment,
        case=clearance.case if clearance.status == HELD else None,
        access_request=terms.access_request,
    )
    # No full_clean: every value was checked by order_terms or made here, and the table's constraints (amounts not
    # negative, the fee within the price, buyer and provider different) stand behind them on every database.
    order.save(force_insert=True)
    for c in terms.charges:
        charge = Charge.objects.create(
            order=order,
            kind=c.kind,
            sequence=1,  # the first period's (a renewal's charges are numbered on from it)
            period_start=c.period_start,
            period_end=c.period_end,
            currency=currency,
            price=c.fees.price,
            buyer_fee=c.fees.buyer_fee,
            provider_fee=c.fees.provider_fee,
        )
        assert cash is not None and escrow is not None  # a charge is never of zero (order_terms)
        _fund(charge, actor, cash=cash, escrow=escrow)
    if terms.access_request is not None:
        transition(
            terms.access_request,
            to=AccessRequest.Status.USED,
            allowed=AccessRequest.ALLOWED,
            actor=actor,
            verb="settlements.access_request_used",
            payload={"order": order.pk},
        )
    _event(order, "placed", actor, new=S.CREATED, total=str(order.total), currency=currency)
    audit_record(
        actor=actor,
        verb="settlements.order_placed",
        target=order,
        payload={
            "reference": order.reference,
            "total": str(order.total),
            "currency": currency,
            "gate": clearance.status,
        },
    )
    _publish(order, "created", total=str(order.total))
    if clearance.status == CLEARED:
        _release(order, clearance, actor=actor)
    else:
        order = _move(order, S.COMPLIANCE_HOLD, actor=None, verb="held")
        _publish(order, "held", case=order.case_id, missing=clearance.missing)
    return order


def _release(order: Order, clearance: Any, *, actor: User | None) -> Order:
    """The gate cleared it: count the export (same transaction, same counter lock) and release the order."""
    if clearance.decided.assessment.decision not in NOT_AN_EXPORT:
        export_record(decided=clearance.decided, actor=actor)
    now = timezone.now()
    today = timezone.localdate(now)
    plan = order.snapshot["plan"]
    if plan["kind"] != PricePlan.Kind.ONE_OFF and timezone.localdate(order.created_at) != today:
        # Released later than placed (held by compliance): the first period starts now, not when it was placed, so
        # that the buyer does not pay for the days it waited.
        first = Q(kind=Charge.Kind.PERIOD, sequence=1) | Q(kind=Charge.Kind.USAGE_BUDGET)
        order.charges.filter(first, status=Charge.Status.HELD).update(
            period_start=today, period_end=period_end(today, plan["period"])
        )
    # The order's right to the data starts with the release; the release's audit row records it.
    entitlement = entitlement_start(order, now=now)
    order = _move(
        order, S.RELEASED, actor=actor, verb="released", audit={"entitlement": entitlement.pk}, released_at=now
    )
    _publish(order, "released", assessment=clearance.decided.assessment.pk, entitlement=entitlement.pk)
    return order


# --- What compliance decided about a held order (outbox subscribers call these) ---------------------------------------


@transaction.atomic
def order_compliance_recheck(*, order: Order) -> Order:
    """Decide a held order again (its case was cleared): cleared, it is released and its export counted now; held
    still, it waits with the gate's current case; prohibited now (the buyer was listed meanwhile), it is refused and
    its escrow returned. A product no longer on sale refuses it too. Idempotent: an order no longer held is left."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != S.COMPLIANCE_HOLD:
        return order
    # The buyer's accounts before the exporter's counter, which the gate locks (the order of locks above): refused
    # on the recheck, the order returns its escrow after the gate's decision, and taking the accounts only then
    # deadlocked with the buyer's next order, which holds them and waits for the counter.
    _lock_accounts(order)
    product = order.product
    try:
        clearance = trade_decide(product=product, buyer_firm=order.buyer_firm, delivery=order.delivery_mode)
    except ApplicationError as exc:
        return _refuse(order, reason=exc.message)
    if product.listed_revision_id != order.revision_id:
        return _refuse(order, reason=_("The product has a new revision since the order; order it again."))
    if clearance.status == CLEARED:
        return _release(order, clearance, actor=None)
    if clearance.status == PROHIBITED:
        reasons = "; ".join(f"{r.get('rule', '')}: {r.get('text_en', '')}" for r in clearance.decision["reasons"])
        return _refuse(order, reason=reasons or _("The compliance rules prohibit this trade."))
    if clearance.case is not None and clearance.case.pk != order.case_id:
        Order.objects.filter(pk=order.pk).update(case=clearance.case)
        order.case = clearance.case
        _event(order, "case_changed", None, case=clearance.case.pk, missing=clearance.missing)
    return order


def _refuse(order: Order, *, reason: str) -> Order:
    order = _move(order, S.REFUSED, actor=None, verb="refused", why=reason, closed_at=timezone.now())
    returned = _return_all(
        order, None, _("%(order)s refused by compliance: escrow returned") % {"order": order.reference}
    )
    _publish(order, "refused", reason=reason, returned=str(returned))
    return order


@transaction.atomic
def order_compliance_refuse(*, order: Order, reason: str) -> Order:
    """The officer refused the order's case: the order is refused and its escrow returned (idempotent)."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != S.COMPLIANCE_HOLD:
        return order
    _lock_accounts(order)
    return _refuse(order, reason=reason)


def held_orders_of_case(case: ComplianceCase) -> list[Order]:
    return list(Order.objects.filter(case=case, status=S.COMPLIANCE_HOLD).order_by("pk"))


# --- The buyer's and the provider's steps ---------------------------------------------------------------------------


@transaction.atomic
def order_cancel(*, order: Order, actor: User, reason: str = "") -> Order:
    """The buyer cancels before delivery: its escrow returns to its cash."""
    _require_side(actor, order.buyer_firm_id, _("Only the buyer's administrators and traders cancel its orders."))
    order = Order.objects.select_for_update().get(pk=order.pk)  # the order, then its accounts, as a refund
    if order.status not in (S.COMPLIANCE_HOLD, S.RELEASED):
        raise InvalidTransition(_("An order can be cancelled only before it is delivered."))
    _lock_accounts(order)
    _lock_entitlement_of(order)
    order = _move(order, S.CANCELLED, actor=actor, verb="cancelled", why=reason.strip(), closed_at=timezone.now())
    entitlement_end_for_order(order, reason=Entitlement.EndReason.CANCELLED, actor=actor, note=reason.strip())
    returned = _return_all(
        order, actor, _("%(order)s cancelled by the buyer: escrow returned") % {"order": order.reference}
    )
    _publish(order, "cancelled", returned=str(returned))
    return order


@transaction.atomic
def order_confirm_delivery(*, order: Order, actor: User, note: str = "") -> Order:
    """The provider has delivered; the buyer then accepts, disputes, or is taken to accept after
    SETTLEMENT_ACCEPTANCE_DAYS."""
    _require_side(actor, order.provider_firm_id, _("Only the provider's administrators and traders confirm delivery."))
    if Entitlement.objects.filter(order_id=order.pk, status=Entitlement.Status.ENDED).exists():
        raise InvalidTransition(
            _("The buyer's entitlement to this order's data has ended: there is nothing left to deliver."),
            code="entitlement_ended",
        )
    now = timezone.now()
    order = _move(
        order,
        S.DELIVERED,
        actor=actor,
        verb="delivered",
        delivered_at=now,
        acceptance_due_at=now + timedelta(days=settings.SETTLEMENT_ACCEPTANCE_DAYS),
    )
    if note.strip():
        _event(order, "note", actor, text=note.strip())
    _publish(
        order, "delivered", acceptance_due_at=order.acceptance_due_at.isoformat() if order.acceptance_due_at else None
    )
    return order


@transaction.atomic
def order_delivered_by_use(*, order: Order, how: str, event: str, audit: dict[str, Any], **data: Any) -> Order:
    """The buyer's first use of what a released order delivers (`how`: a complete download of a one-off purchase's
    file, the data gateway's first answered call): the order is delivered, by the exchange, and its acceptance window
    opens; its timeline says how (`event`, with `data`). An order past `released` (delivered already, disputed,
    closed) is left."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != S.RELEASED:
        return order
    now = timezone.now()
    order = _move(
        order,
        S.DELIVERED,
        actor=None,
        verb="delivered",
        audit=audit,
        delivered_at=now,
        acceptance_due_at=now + timedelta(days=settings.SETTLEMENT_ACCEPTANCE_DAYS),
    )
    _event(order, event, None, **data)
    _publish(
        order,
        "delivered",
        acceptance_due_at=order.acceptance_due_at.isoformat() if order.acceptance_due_at else None,
        by=how,
    )
    return order


def order_delivered_by_download(*, order: Order, download: Any) -> Order:
    """The first complete download of a one-off purchase's file delivers its order (`order_delivered_by_use`)."""
    return order_delivered_by_use(
        order=order,
        how="download",
        event="downloaded",
        audit={"download": download.pk},
        file=download.file_name,
        bytes=download.bytes_sent,
        sha256=download.sha256,
    )


@transaction.atomic
def order_accept(*, order: Order, actor: User | None) -> Order:
    """The buyer accepts the delivery (actor None: accepted automatically when the window closed). Settlement to
    the provider follows from the `order.accepted` event (order_settle)."""
    if actor is not None:
        _require_side(actor, order.buyer_firm_id, _("Only the buyer's administrators and traders accept its orders."))
        if order.status != S.DELIVERED:
            raise InvalidTransition(_("Only a delivered order can be accepted."))
    order = _move(order, S.ACCEPTED, actor=actor, verb="accepted", accepted_at=timezone.now())
    _publish(order, "accepted", automatic=actor is None)
    return order


@transaction.atomic
def order_dispute(*, order: Order, actor: User, reason: str) -> Order:
    """The buyer disputes the delivery within the acceptance window; staff resolve it (release or refund)."""
    _require_side(actor, order.buyer_firm_id, _("Only the buyer's administrators and traders dispute its orders."))
    reason = require_reason(reason, _("Say what is wrong with the delivery: the provider and the exchange read it."))
    if order.status == S.DELIVERED and order.acceptance_due_at and order.acceptance_due_at <= timezone.now():
        raise InvalidTransition(_("The acceptance window has closed."), code="acceptance_window_closed")
    order = _move(order, S.DISPUTED, actor=actor, verb="disputed", why=reason)
    _publish(order, "disputed", reason=reason)
    return order


@transaction.atomic
def order_settle(*, order: Order) -> Order:
    """Pay an accepted order's held price to the provider's payable and its fees to the exchange (idempotent: a
    settled order is left as it is, and each charge's settlement entry is unique)."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != S.ACCEPTED:
        return order
    # The purchase or the first period: a renewal's period is paid when it ends (period_charges_settle_due).
    first = Q(kind=Charge.Kind.PURCHASE) | Q(kind=Charge.Kind.PERIOD, sequence=1)
    for charge in order.charges.filter(first, status=Charge.Status.HELD).order_by("pk"):
        _close_charge(
            charge, refund=Decimal("0.00"), actor=None, memo=_("%(order)s settled") % {"order": order.reference}
        )
    order = _move(order, S.SETTLED, actor=None, verb="settled", settled_at=timezone.now())
    _publish(order, "settled")
    return order


@transaction.atomic
def usage_budget_close(*, charge: Charge, now: Any = None) -> Charge:
    """End a metered order's usage budget once its period has ended: the period's usage is charged from it (the
    calls beyond those included at the plan's unit price, with the fees of the schedule in force on the period's
    first day) to the provider's payable and the exchange's fees, and the rest goes back to the buyer's cash.
    The meter's final count is taken under the usage row's lock, and the usage row records the charge: once per
    (entitlement, period). A disputed order's budget waits for the dispute's end. Idempotent: a budget closed
    already is left as it is."""
    now = now or timezone.now()
    order = Order.objects.select_for_update(of=("self",)).select_related("board").get(pk=charge.order_id)
    charge = Charge.objects.get(pk=charge.pk)
    if charge.status != Charge.Status.HELD or charge.kind != Charge.Kind.USAGE_BUDGET:
        return charge
    if order.status not in (S.ACCEPTED, S.SETTLED):
        # As the order's base fee, its usage is the provider's once the delivery is accepted: a budget waits while the
        # order is held (its release moves the budget's period), delivered within its acceptance window or disputed.
        # A refund or cancellation returns a budget still held; an order never delivered in its period is refunded.
        return charge
    usage = (
        Usage.objects.select_for_update(of=("self",))
        .filter(entitlement__order_id=order.pk, period_start=charge.period_start)
        .first()
        if charge.period_start is not None
        else None
    )
    calls = meter_final_count(usage) if usage is not None else 0
    cost = None
    if usage is not None and usage.unit_price and calls > (usage.calls_included or 0):
        cost = usage_cost(calls, usage=usage, fees_of=usage_fees_of(order, usage.period_start))
    charged = cost.price + cost.buyer_fee if cost else Decimal("0.00")
    if charged > charge.total:  # the limit was computed to stop short of this: never charge beyond the budget
        log.error(
            "usage %s of order %s costs %s, its budget holds %s", usage and usage.pk, order.pk, charged, charge.total
        )
        raise ApplicationError(_("The usage costs more than its budget holds."), code="usage_over_budget")
    _lock_accounts(order, settling=charged > 0)
    memo = _("%(order)s: usage of the period to %(end)s charged, the rest of its budget returned") % {
        "order": order.reference,
        "end": charge.period_end,
    }
    split = (cost.price - cost.provider_fee, cost.provider_fee + cost.buyer_fee) if cost else None
    _close_charge(charge, refund=charge.total - charged, actor=None, memo=memo, split=split)
    if usage is not None:
        Usage.objects.filter(pk=usage.pk).update(calls=calls, charge=charge, charged=charged, closed_at=now)
        meter_forget(usage)
    returned = charge.total - charged
    _event(order, "usage_charged", None, calls=calls, charged=str(charged), returned=str(returned),
           period_end=str(charge.period_end))  # fmt: skip
    _publish(order, "usage_charged", calls=calls, charged=str(charged), returned=str(returned))
    charge.refresh_from_db()
    return charge


def usage_budgets_close_due(*, today: Any = None) -> list[int]:
    """Close every usage budget whose period ended before today (Asia/Shanghai; a periodic task) of an accepted order,
    each in its own transaction (one that fails is logged and stops no other); then close the other usage periods
    that ended (quotas: nothing to charge). The budgets closed."""
    today = today or timezone.localdate()
    due = Charge.objects.filter(
        kind=Charge.Kind.USAGE_BUDGET, status=Charge.Status.HELD, period_end__lt=today
    ).order_by("pk")
    closed = []
    for charge in due.iterator():
        try:
            if usage_budget_close(charge=charge).status != Charge.Status.HELD:
                closed.append(charge.pk)
        except ApplicationError:  # one budget the exchange must look at (no fee schedule) stops no other
            log.exception("usage budget %s of order %s could not be closed", charge.pk, charge.order_id)
    usage_periods_close_due(today=today)
    return closed


def usage_periods_close_due(*, today: Any = None) -> int:
    """Close the usage periods that ended before today and hold no budget to charge (a quota's, or a budget
    refunded with its order): their final count written, their counters forgotten. How many were closed."""
    today = today or timezone.localdate()
    held_budgets = Charge.objects.filter(
        kind=Charge.Kind.USAGE_BUDGET,
        status=Charge.Status.HELD,
        order_id=OuterRef("entitlement__order_id"),
        period_start=OuterRef("period_start"),
    )
    due = Usage.objects.filter(closed_at__isnull=True, period_end__lt=today).exclude(Exists(held_budgets))
    closed = 0
    for usage in due.order_by("pk").iterator():
        with transaction.atomic():
            locked = Usage.objects.select_for_update().get(pk=usage.pk)
            if locked.closed_at is not None:
                continue
            Usage.objects.filter(pk=locked.pk).update(calls=meter_final_count(locked), closed_at=timezone.now())
            meter_forget(locked)
            closed += 1
    return closed


def orders_accept_due(*, now: Any = None) -> list[int]:
    """Accept every delivered order whose acceptance window has closed (a periodic task); each in its own
    transaction, so one that was disputed or accepted meanwhile (a stale state) does not stop the others."""
    now = now or timezone.now()
    accepted = []
    due = Order.objects.filter(status=S.DELIVERED, acceptance_due_at__lte=now).order_by("acceptance_due_at", "pk")
    for order in due.iterator():
        try:
            order_accept(order=order, actor=None)
        except InvalidTransition:
            continue
        accepted.append(order.pk)
    return accepted


# --- Subscriptions: a period at a time ------------------------------------------------------------------------------

# Orders whose subscription renews: delivered (and on). A disputed one waits for its dispute's end; one the provider
# has not delivered within its first period is not renewed (its entitlement ends, and the buyer may cancel it).
RENEWABLE = (S.DELIVERED, S.ACCEPTED, S.SETTLED)


def _lock_for_entitlement(entitlement: Entitlement) -> tuple[Order, Entitlement]:
    """The order, the buyer's accounts, then the entitlement: the order of locks of every path that moves both (a
    refund, a cancellation, a renewal, an entitlement lost), the audit trail's head last."""
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("plan", "product", "board", "buyer_firm")
        .get(pk=entitlement.order_id)
    )
    _lock_accounts(order)
    return order, Entitlement.objects.select_for_update().get(pk=entitlement.pk)


def _lock_entitlement_of(order: Order) -> None:
    """The order's entitlement row, if it has one, locked before its status moves (the order of locks above)."""
    list(Entitlement.objects.select_for_update().filter(order_id=order.pk).values_list("pk", flat=True))


@transaction.atomic
def subscription_renew(*, entitlement: Entitlement, now: Any = None) -> Entitlement:
    """Charge a subscription's next period once its paid period has ended: the plan's price as the order bought it,
    the fee schedule in force on the period's first day, from the buyer's cash into escrow through the one posting
    service; the entitlement runs on to the new period's end. The new period starts when the last one ended, or
    today if that is later (a dispute, a lapse, a task not run): a buyer never pays for days it could not use.

    Before charging, the compliance gate decides the trade again as of today; not cleared, the entitlement ends
    (`order_entitlement_lost`). Short of cash, the entitlement lapses (not usable) for
    SETTLEMENT_SUBSCRIPTION_GRACE_DAYS and the buyer's next deposit renews it (`subscriptions_renew_for_firm`). A
    subscription the buyer stopped, a retired plan or a product no longer listed is not renewed: the entitlement
    ends. A free period extends the entitlement with no charge.

    Idempotent on (entitlement, period): a period charged moves the end past `now`, and the charge's (order, kind,
    sequence) is unique."""
    now = now or timezone.now()
    order, entitlement = _lock_for_entitlement(entitlement)
    due = entitlement.ends_at is not None and entitlement.ends_at <= now
    if entitlement.status == Entitlement.Status.ENDED or not entitlement.follows_revisions or not due:
        return entitlement
    if order.status == S.DISPUTED:
        return entitlement  # waits: renewed from the day the dispute ends, if it ends with the order going on
    if order.status not in RENEWABLE:
        return entitlement_end(entitlement, reason=Entitlement.EndReason.UNDELIVERED, now=now)
    if not entitlement.renews:
        return entitlement_end(entitlement, reason=Entitlement.EndReason.STOPPED, now=now)
    plan, product = order.plan, order.product
    if not plan.is_active or product.listing_status != ListingStatus.LISTED:
        _event(order, "renewal_ended", None, plan_active=plan.is_active, listing_status=product.listing_status)
        return entitlement_end(entitlement, reason=Entitlement.EndReason.LAPSED, now=now)
    try:
        cleared = trade_precheck(product=product, buyer_firm=order.buyer_firm, delivery=order.delivery_mode)
        gate = cleared.status
    except ApplicationError:
        gate = PROHIBITED  # no trade of the product to decide: fail closed
    if gate != CLEARED:
        return _entitlement_lost(order, entitlement, reason=Entitlement.EndReason.COMPLIANCE, actor=None)
    assert entitlement.ends_at is not None
    start = max(timezone.localdate(entitlement.ends_at), timezone.localdate(now))
    end = period_end(start, plan.period)
    schedule = fee_schedule_in_force(board=order.board, currency=order.currency, day=start)
    price = Decimal(order.snapshot["plan"]["amount"])
    cash = account_for(firm=order.buyer_firm, kind=Account.Kind.CASH, currency=order.currency)
    fees = fees_for(price=price, schedule=schedule, currency=order.currency) if schedule else None
    # A metered plan's next period holds a new usage budget too, as large as the buyer chose at the order.
    budget = order.usage_budget if order.snapshot["plan"]["kind"] == PricePlan.Kind.METERED else Decimal("0.00")
    if fees is None or cash.balance < fees.buyer_pays + budget:
        if entitlement.status == Entitlement.Status.LAPSED:
            return entitlement  # still unpaid: the grace period runs on
        grace = now + timedelta(days=settings.SETTLEMENT_SUBSCRIPTION_GRACE_DAYS)
        needed = fees.buyer_pays + budget if fees else price + budget
        _event(order, "renewal_unpaid", None, needed=str(needed), grace_until=grace.isoformat())
        return entitlement_lapse(entitlement, grace_until=grace, needed=str(needed), available=str(cash.balance))
    sequence = 1 + max((c.sequence for c in order.charges.filter(kind=Charge.Kind.PERIOD)), default=0)
    total = fees.buyer_pays
    if total > 0:
        charge = Charge.objects.create(
            order=order,
            kind=Charge.Kind.PERIOD,
            sequence=sequence,
            period_start=start,
            period_end=end,
            currency=order.currency,
            price=fees.price,
            buyer_fee=fees.buyer_fee,
            provider_fee=fees.provider_fee,
        )
        escrow = account_for(firm=order.buyer_firm, kind=Account.Kind.ESCROW, currency=order.currency)
        _fund(charge, None, cash=cash, escrow=escrow)
    if budget > 0:
        held = order.charges.filter(kind=Charge.Kind.USAGE_BUDGET)
        budget_charge = Charge.objects.create(
            order=order,
            kind=Charge.Kind.USAGE_BUDGET,
            sequence=1 + max((c.sequence for c in held), default=0),
            period_start=start,
            period_end=end,
            currency=order.currency,
            price=budget,
            buyer_fee=Decimal("0.00"),
            provider_fee=Decimal("0.00"),
        )
        escrow = account_for(firm=order.buyer_firm, kind=Account.Kind.ESCROW, currency=order.currency)
        _fund(budget_charge, None, cash=cash, escrow=escrow)
        total += budget
    _event(order, "renewed", None, period=sequence, period_start=str(start), period_end=str(end), total=str(total))
    _publish(order, "renewed", period=sequence, period_end=str(end), total=str(total))
    return entitlement_extend(entitlement, ends_at=day_end(end))


def subscriptions_renew_due(*, now: Any = None) -> list[int]:
    """Renew every renewing subscription whose paid period has ended (a periodic task), each in its own
    transaction; the entitlements renewed, lapsed or ended."""
    now = now or timezone.now()
    due = Entitlement.objects.filter(
        status=Entitlement.Status.ACTIVE, follows_revisions=True, renews=True, ends_at__lte=now
    )
    done = []
    for entitlement in due.order_by("ends_at", "pk").iterator():
        try:
            subscription_renew(entitlement=entitlement, now=now)
        except (InvalidTransition, ApplicationError):
            continue  # moved meanwhile (refunded, ended): the next run sees it as it is
        done.append(entitlement.pk)
    return done


def subscriptions_renew_for_firm(*, firm_id: int, now: Any = None) -> list[int]:
    """The firm's lapsed subscriptions, renewed if its cash now pays them (its deposit was booked)."""
    now = now or timezone.now()
    lapsed = Entitlement.objects.filter(
        buyer_firm_id=firm_id, status=Entitlement.Status.LAPSED, renews=True, grace_until__gt=now
    )
    renewed = []
    for entitlement in lapsed.order_by("ends_at", "pk").iterator():
        if subscription_renew(entitlement=entitlement, now=now).status == Entitlement.Status.ACTIVE:
            renewed.append(entitlement.pk)
    return renewed


@transaction.atomic
def entitlement_stop(*, entitlement: Entitlement, actor: User) -> Entitlement:
    """The buyer stops its subscription: no period is charged after the one paid (a lapsed one ends now)."""
    _require_side(
        actor, entitlement.buyer_firm_id, _("Only the buyer's administrators and traders stop its subscriptions.")
    )
    _order, entitlement = _lock_for_entitlement(entitlement)
    return entitlement_stop_renewal(entitlement=entitlement, actor=actor)


@transaction.atomic
def period_charge_settle(*, charge: Charge) -> Charge:
    """A renewal's period, ended, of an order already accepted: its price to the provider's payable and the fees to
    the exchange (a renewal of an order not yet accepted settles at the end of its period after the acceptance).
    Idempotent."""
    order = Order.objects.select_for_update().get(pk=charge.order_id)
    charge = Charge.objects.get(pk=charge.pk)
    if charge.status != Charge.Status.HELD or order.status not in (S.ACCEPTED, S.SETTLED):
        return charge
    _lock_accounts(order, settling=True)
    memo = _("%(order)s: period %(n)s settled") % {"order": order.reference, "n": charge.sequence}
    _close_charge(charge, refund=Decimal("0.00"), actor=None, memo=memo)
    charge.refresh_from_db()
    return charge


def period_charges_settle_due(*, today: Any = None) -> list[int]:
    """Settle every renewal period that ended before today (Asia/Shanghai) of an accepted order (a periodic task)."""
    today = today or timezone.localdate()
    due = Charge.objects.filter(
        kind=Charge.Kind.PERIOD,
        status=Charge.Status.HELD,
        sequence__gt=1,
        period_end__lt=today,
        order__status__in=(S.ACCEPTED, S.SETTLED),
    )
    return [period_charge_settle(charge=charge).pk for charge in due.order_by("pk").iterator()]


# --- Entitlements lost for a reason not the buyer's ----------------------------------------------------------------


def _entitlement_lost(
    order: Order, entitlement: Entitlement, *, reason: str, actor: User | None, note: str = ""
) -> Entitlement:
    """End the entitlement (order, accounts and entitlement locked by the caller) and put right what its money owes
    the buyer: an order not yet delivered is refunded whole (the provider delivered nothing); a delivered
    subscription's renewal periods still held in escrow go back to the buyer (the period it was cut short in
    included: the provider's product or compliance ended it, not the buyer). What was delivered and accepted stays
    the provider's; a delivered, unaccepted order is the buyer's to dispute."""
    if entitlement.status == Entitlement.Status.ENDED:
        return entitlement
    entitlement = entitlement_end(entitlement, reason=reason, actor=actor, note=note)
    memo = _("%(order)s: the buyer's entitlement ended, its money returned") % {"order": order.reference}
    if order.status == S.RELEASED:
        order = _move(order, S.REFUNDED, actor=actor, verb="refunded", audit={"entitlement_ended": reason},
                      closed_at=timezone.now())  # fmt: skip
        returned = _return_all(order, actor, memo)
        _publish(order, "refunded", amount=str(returned), whole=True, entitlement_ended=reason)
    elif order.status in (S.DELIVERED, S.ACCEPTED, S.SETTLED, S.DISPUTED):
        renewals = order.charges.filter(status=Charge.Status.HELD, kind=Charge.Kind.PERIOD, sequence__gt=1)
        returned = Decimal("0.00")
        for charge in renewals.order_by("pk"):
            _close_charge(charge, refund=charge.total, actor=actor, memo=memo)
            returned += charge.total
        if returned:
            _event(order, "periods_returned", actor, amount=str(returned), entitlement_ended=reason)
            _publish(order, "periods_returned", amount=str(returned))
    return entitlement


@transaction.atomic
def order_entitlement_lost(
    *, entitlement: Entitlement, reason: str, actor: User | None = None, note: str = ""
) -> Entitlement:
    """One entitlement lost (`_entitlement_lost`), in its own transaction, under the locks in their order."""
    order, entitlement = _lock_for_entitlement(entitlement)
    return _entitlement_lost(order, entitlement, reason=reason, actor=actor, note=note)


def entitlements_end_for_product(*, product_id: int, reason: str) -> list[int]:
    """The product was suspended or delisted: every entitlement to it not ended yet ends, each with its money put
    right (an outbox subscriber; each in its own transaction: run again, it finds the rest)."""
    live = Entitlement.objects.filter(product_id=product_id, status__in=Entitlement.LIVE).order_by("pk")
    return [order_entitlement_lost(entitlement=e, reason=reason).pk for e in live.iterator()]


def entitlements_recheck_exporter(*, exporter_id: int) -> list[int]:
    """A filing of the exporter was revoked or lapsed: every entitlement to its data that is an export is decided
    again by the compliance gate as of today, as a trade of the revision it delivers now (a one-off's own, a
    subscription's newest it follows: settlements.selectors.deliverable_dataset), and ends unless it is still
    cleared (an outbox subscriber). A trade the gate can no longer decide ends too: fail closed. A product not
    listed is left: its suspension or delisting ends what was bought of it."""
    ended = []
    candidates = (
        Entitlement.objects.filter(product__provider_id=exporter_id, status__in=Entitlement.LIVE)
        .exclude(order__assessment__decision__in=NOT_AN_EXPORT)
        .select_related("product__provider", "product__board", "product__listed_revision", "buyer_firm")
        .order_by("pk")
    )
    for entitlement in candidates:
        try:
            if entitlement.product.listing_status != ListingStatus.LISTED:
                continue  # its suspension or delisting ends what was bought of it

            # The revision it delivers now: a one-off's own, a subscription's newest it may follow (a later one
            # nobody cleared for it is not what it delivers: downloads.deliverable_dataset).
            delivered = deliverable_dataset(entitlement)
            cleared = (
                trade_precheck(
                    product=entitlement.product,
                    buyer_firm=entitlement.buyer_firm,
                    delivery=entitlement.delivery_mode,
                    revision=delivered.revision if delivered is not None else entitlement.revision,
                ).status
                == CLEARED
            )
        except ApplicationError as exc:
            if exc.code == "not_listed":
                continue
            cleared = False
        if not cleared:
            order_entitlement_lost(entitlement=entitlement, reason=Entitlement.EndReason.COMPLIANCE)
            ended.append(entitlement.pk)
    return ended


@transaction.atomic
def entitlement_revoke(*, entitlement: Entitlement, actor: User, reason: str) -> Entitlement:
    """Staff revoke an entitlement (a breach of the licence, an authority's order), with the reason the buyer reads;
    its money is put right as for any entitlement lost (`_entitlement_lost`)."""
    require_entitlement_revoker(actor)
    reason = require_reason(reason, _("Say why the entitlement is revoked: the buyer reads it."))
    order, entitlement = _lock_for_entitlement(entitlement)
    if entitlement.status == Entitlement.Status.ENDED:
        raise InvalidTransition(_("This entitlement has ended already."))
    return _entitlement_lost(order, entitlement, reason=Entitlement.EndReason.REVOKED, actor=actor, note=reason)


# --- Staff: refunds and disputes -------------------------------------------------------------------------------------


@transaction.atomic
def order_refund(*, order: Order, actor: User, reason: str, amount: Decimal | None = None) -> Order:
    """Refund an order (staff): all it holds in escrow, or `amount` of it, the rest then settled to the provider
    and the fees in proportion. Refundable until it is settled: released, delivered or disputed."""
    require_refund_clerk(actor)
    reason = require_reason(reason, _("Say why the order is refunded: both firms read it."))
    order = Order.objects.select_for_update().get(pk=order.pk)
    assert_can_transition(order, S.REFUNDED, Order.ALLOWED)  # a settled or closed order first says so
    held = list(order.charges.filter(status=Charge.Status.HELD).order_by("pk"))
    # A usage budget is the buyer's money until usage is charged from it: refunded whole, always. `amount` is what
    # returns of the price (the purchase or the period), whose rest is settled to the provider and the fees.
    budgets = [c for c in held if c.kind == Charge.Kind.USAGE_BUDGET]
    priced = [c for c in held if c.kind != Charge.Kind.USAGE_BUDGET]
    refundable = sum((c.total for c in priced), Decimal("0.00"))
    if amount is None:
        amount = refundable
    if (amount <= 0 and refundable > 0) or amount < 0 or amount > refundable:
        raise ApplicationError(
            _("Refund between 0.01 and the %(held)s %(currency)s the order holds of its price.")
            % {"held": refundable, "currency": order.currency},
            code="invalid_amount",
            details={"amount": [str(amount)], "held": str(refundable)},
        )
    # Every account the refund moves, locked now in one go, in primary-key order, before the status moves. Entry by
    # entry, a partial refund would lock the buyer's cash and escrow (the refund entry) before the provider's payable
    # and the fee revenue (the settlement of the rest): the reverse of a settlement of another of the buyer's
    # orders, which takes the fee revenue first (an older account) and then waits for the buyer's escrow.
    _lock_accounts(order, settling=amount < refundable)
    _lock_entitlement_of(order)
    order = _move(order, S.REFUNDED, actor=actor, verb="refunded", why=reason, closed_at=timezone.now())
    entitlement_end_for_order(order, reason=Entitlement.EndReason.REFUNDED, actor=actor, note=reason)
    memo = _("%(order)s refunded: %(reason)s") % {"order": order.reference, "reason": reason[:120]}
    shares = allocate(amount, [c.total for c in priced], order.currency) if priced else []
    for charge, share in zip(priced, shares, strict=True):
        _close_charge(charge, refund=share, actor=actor, memo=memo)
    for charge in budgets:
        _close_charge(charge, refund=charge.total, actor=actor, memo=memo)
    returned = amount + sum((c.total for c in budgets), Decimal("0.00"))
    _publish(order, "refunded", amount=str(returned), whole=amount == refundable)
    return order


@transaction.atomic
def order_resolve_dispute(
    *, order: Order, actor: User, outcome: str, reason: str, amount: Decimal | None = None
) -> Order:
    """Staff end a dispute: `release` (accepted for the buyer, then settled) or `refund` (whole or `amount`)."""
    require_refund_clerk(actor)
    if order.status != S.DISPUTED:
        raise InvalidTransition(_("This order is not disputed."))
    if outcome == "refund":
        return order_refund(order=order, actor=actor, reason=reason, amount=amount)
    if outcome != "release":
        raise ApplicationError(_("Release or refund."), code="validation_error", details={"outcome": [outcome]})
    reason = require_reason(reason, _("Say why the dispute is resolved this way: both firms read it."))
    order = _move(order, S.ACCEPTED, actor=actor, verb="dispute_released", why=reason, accepted_at=timezone.now())
    _publish(order, "accepted", automatic=False, resolved_by_staff=True)
    return order
