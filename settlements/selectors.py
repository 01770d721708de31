"""The settlements app's reads: balances, statements, the ledger's invariants, fees in force, orders and
requests as each caller may see them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import connection, models
from django.db.models import F, Prefetch, Q, QuerySet, Subquery, Sum, prefetch_related_objects
from django.db.models.functions import Coalesce, Round
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from compliance.selectors import firm_is_restricted, sandbox_output_anonymised
from exchange.exceptions import ApplicationError, NotAllowed
from exchange.models import Board, MemberFirm, Membership
from exchange.money import bps_of, is_quantized, quantize
from exchange.selectors import board_access, firm_get_by_public_code, user_membership
from listings.models import DataProduct, Dataset, DeliveryMode, ListingStatus, PricePlan, Revision
from listings.selectors import plans_visible_q, product_get_for_user

from .models import (
    AccessRequest,
    Account,
    Charge,
    DataCredential,
    Deposit,
    Entitlement,
    FeeSchedule,
    FxRate,
    JournalEntry,
    Order,
    OrderEvent,
    Posting,
    SandboxQuery,
    Usage,
    Withdrawal,
)

ZERO = Decimal("0.00")
AMOUNT: models.DecimalField[Decimal, Decimal] = models.DecimalField(max_digits=20, decimal_places=2)
# Half a minor unit: a sum at least this far from zero is not zero. (SQLite adds decimals as floats, leaving
# residues like 4.5e-14 in a sum that is exactly zero; PostgreSQL's numeric is exact either way.)
NONZERO = Q(total__gte=Decimal("0.005")) | Q(total__lte=Decimal("-0.005"))


def money_sum(field: Any, **extra: Any) -> Round:
    """SUM of an amount column, rounded to the minor unit in the query. SQLite adds decimals as floats and Django
    reads an aggregate back unquantized, so a sum that is exactly zero came back as 5.55e-17 and the reconciliation
    reported a balance that was right; on PostgreSQL (exact numeric) the rounding changes nothing."""
    return Round(Sum(field, output_field=AMOUNT, **extra), 2, output_field=AMOUNT)


# --- Balances and statements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    currency: str
    cash: Decimal
    escrow: Decimal
    payable: Decimal
    withdrawal: Decimal

    @property
    def total(self) -> Decimal:
        return self.cash + self.escrow + self.payable + self.withdrawal


def balances_for_firm(*, firm_id: int) -> list[Balance]:
    """The firm's balances per currency it holds (cached balances: one query whatever the ledger's size)."""
    per_currency: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for kind, currency, balance in Account.objects.filter(firm_id=firm_id).values_list("kind", "currency", "balance"):
        per_currency[currency][kind] = balance
    return [
        Balance(
            currency=currency,
            cash=kinds[Account.Kind.CASH],
            escrow=kinds[Account.Kind.ESCROW],
            payable=kinds[Account.Kind.PAYABLE],
            withdrawal=kinds[Account.Kind.WITHDRAWAL],
        )
        for currency, kinds in sorted(per_currency.items())
    ]


def cash_available(*, firm_id: int, currency: str) -> Decimal:
    balance = Account.objects.filter(firm_id=firm_id, kind=Account.Kind.CASH, currency=currency).values_list(
        "balance", flat=True
    )
    return next(iter(balance), ZERO)


def statement_lines(*, firm_id: int) -> QuerySet[Posting]:
    """The postings on the firm's accounts, newest first, with their entry (a statement line each)."""
    return (
        Posting.objects.filter(account__firm_id=firm_id)
        .select_related("account", "entry", "entry__charge__order", "entry__deposit")
        .order_by("-id")
    )


# --- Fees and FX ------------------------------------------------------------------------------------------------


def fee_schedule_in_force(*, board: Board, currency: str, day: date) -> FeeSchedule | None:
    """The schedule an order on `board` in `currency` is charged on `day`: the latest version in force by then (one
    per board, currency and day, a unique constraint). `fee_schedules_published` picks the same row for everyone to
    read; a test holds the two together."""
    schedule = (
        FeeSchedule.objects.filter(board=board, currency=currency, effective_from__lte=day)
        .order_by("-effective_from")
        .first()
    )
    if schedule is not None:
        schedule.board = board  # the caller's: its snapshot names the board without reading it again
    return schedule


@dataclass(frozen=True)
class PublishedFees:
    """What the exchange charges on a board in a currency: the schedule in force on the day, and those to come."""

    board: Board
    currency: str
    in_force: FeeSchedule | None
    upcoming: tuple[FeeSchedule, ...]


def fee_schedules_published(*, board_ids: frozenset[int] | None = None, day: date | None = None) -> list[PublishedFees]:
    """Per board (all, or those of `board_ids`) and currency it settles in, the fee schedule in force on `day`
    (today in the exchange's time zone) and the versions staff have added for later days: what every order on the
    board is charged, published (the landing page, /fees, the API)."""
    day = day or timezone.localdate()
    boards = Board.objects.order_by("id")
    if board_ids is not None:
        boards = boards.filter(id__in=board_ids)
    by_board = {board.pk: board for board in boards}
    versions: dict[tuple[int, str], list[FeeSchedule]] = defaultdict(list)
    for schedule in FeeSchedule.objects.filter(board_id__in=list(by_board)).order_by("effective_from", "id"):
        schedule.board = by_board[schedule.board_id]
        versions[(schedule.board_id, schedule.currency)].append(schedule)
    published = []
    for board in by_board.values():
        for currency in board.settlement_currencies:
            rows = versions.get((board.pk, currency), [])
            started = [s for s in rows if s.effective_from <= day]
            published.append(
                PublishedFees(
                    board=board,
                    currency=currency,
                    in_force=started[-1] if started else None,
                    upcoming=tuple(s for s in rows if s.effective_from > day),
                )
            )
    return published


@dataclass(frozen=True)
class Fees:
    price: Decimal
    buyer_fee: Decimal
    provider_fee: Decimal

    @property
    def buyer_pays(self) -> Decimal:
        return self.price + self.buyer_fee

    @property
    def provider_receives(self) -> Decimal:
        return self.price - self.provider_fee

    @property
    def exchange_earns(self) -> Decimal:
        return self.buyer_fee + self.provider_fee


def fees_for(*, price: Decimal, schedule: FeeSchedule, currency: str) -> Fees:
    """The fees on a price under a schedule: each rate rounded once (exchange.money.bps_of); the buyer's fixed
    fee applies to a priced charge only (nothing is charged on a free one)."""
    price = quantize(price, currency)
    provider_fee = bps_of(price, schedule.provider_rate_bps, currency)
    buyer_fee = bps_of(price, schedule.buyer_rate_bps, currency)
    if price > 0:
        buyer_fee += quantize(schedule.buyer_fixed, currency)
    return Fees(price=price, buyer_fee=buyer_fee, provider_fee=min(provider_fee, price))


def fx_rate_on(*, currency: str, day: date) -> FxRate | None:
    """The latest rate to CNY on or before the day."""
    return FxRate.objects.filter(currency=currency, quote="CNY", day__lte=day).order_by("-day").first()


def to_cny(*, amount: Decimal, currency: str, day: date) -> Decimal | None:
    """An amount in CNY for reporting (never to move money); None when no rate is known on or before the day."""
    if currency == "CNY":
        return amount
    rate = fx_rate_on(currency=currency, day=day)
    return quantize(amount * rate.rate, "CNY") if rate else None


# --- The ledger's invariants -------------------------------------------------------------------------------------


def ledger_problems() -> list[str]:
    """Every invariant of the ledger that does not hold now (none when sound). In aggregate queries, never a loop
    over postings: the nightly check and the tests' fixture call it on ledgers of any size.

    1. every entry sums to zero per currency; 2. no member account below zero; 3. each firm's escrow equals the
    charges it holds; 4. fee revenue equals the fees earned by closed charges; 5. every closed charge has
    exactly the entries its outcome needs; 7. the trial balance is zero per currency; and each cached balance
    equals its postings; each firm's withdrawals account equals its open withdrawals; the bank equals what the
    exchange owes its members plus its fees (money in = money out + balances).
    """
    problems: list[str] = []
    for row in Posting.objects.values("entry_id", "currency").annotate(total=money_sum("amount")).filter(NONZERO):
        problems.append(f"entry {row['entry_id']} does not balance in {row['currency']}: {row['total']}")
    for account in Account.objects.filter(firm__isnull=False, balance__lt=0):
        problems.append(f"account {account.pk} ({account}) is below zero: {account.balance}")
    sums = dict(
        Posting.objects.values("account_id").annotate(total=money_sum("amount")).values_list("account_id", "total")
    )
    for account in Account.objects.all():
        expected = sums.get(account.pk, ZERO) * account.sign
        if account.balance != expected:
            problems.append(f"account {account.pk} ({account}) caches {account.balance}, its postings say {expected}")
    trial = Posting.objects.values("currency").annotate(total=money_sum("amount")).filter(NONZERO)
    for row in trial:
        problems.append(f"the trial balance in {row['currency']} is {row['total']}, not zero")

    held: dict[tuple[int | None, str], Decimal] = defaultdict(lambda: ZERO)
    for row in (
        Charge.objects.filter(status=Charge.Status.HELD)
        .values("order__buyer_firm_id", "currency")
        .annotate(holding=money_sum(F("price") + F("buyer_fee")))
    ):
        held[(row["order__buyer_firm_id"], row["currency"])] = row["holding"]
    escrow = {(a.firm_id, a.currency): a.balance for a in Account.objects.filter(kind=Account.Kind.ESCROW)}
    for key in set(held) | set(escrow):
        if held.get(key, ZERO) != escrow.get(key, ZERO):
            problems.append(
                f"escrow of firm {key[0]} in {key[1]} is {escrow.get(key, ZERO)}, its held charges {held.get(key, ZERO)}"
            )

    earned = dict(
        Charge.objects.exclude(status=Charge.Status.HELD)
        .values("currency")
        .annotate(earned=money_sum("fee_collected"))
        .values_list("currency", "earned")
    )
    revenue = dict(Account.objects.filter(kind=Account.Kind.FEE_REVENUE).values_list("currency", "balance"))
    for currency in set(earned) | set(revenue):
        if earned.get(currency, ZERO) != revenue.get(currency, ZERO):
            problems.append(
                f"fee revenue in {currency} is {revenue.get(currency, ZERO)}, fees earned {earned.get(currency, ZERO)}"
            )

    counts: dict[tuple[int, str], int] = defaultdict(int)
    for row in JournalEntry.objects.filter(charge__isnull=False, reverses__isnull=True).values("charge_id", "kind"):
        counts[(row["charge_id"], row["kind"])] += 1
    for charge in Charge.objects.values(
        "pk", "status", "price", "buyer_fee", "refunded", "provider_net", "fee_collected"
    ):
        pk = charge["pk"]
        ended = charge["refunded"] + charge["provider_net"] + charge["fee_collected"]
        if charge["status"] != Charge.Status.HELD and ended != charge["price"] + charge["buyer_fee"]:
            problems.append(f"charge {pk} held {charge['price'] + charge['buyer_fee']} and accounts for {ended}")
        if counts.get((pk, JournalEntry.Kind.FUNDING), 0) != 1:
            problems.append(f"charge {pk} has {counts.get((pk, JournalEntry.Kind.FUNDING), 0)} funding entries")
        settled = 1 if charge["provider_net"] or charge["fee_collected"] else 0
        refunded = 1 if charge["refunded"] else 0
        if charge["status"] == Charge.Status.HELD:
            settled = refunded = 0
        for kind, expected in ((JournalEntry.Kind.SETTLEMENT, settled), (JournalEntry.Kind.REFUND, refunded)):
            if counts.get((pk, kind), 0) != expected:
                problems.append(
                    f"charge {pk} ({charge['status']}) has {counts.get((pk, kind), 0)} {kind} entries, not {expected}"
                )

    pending = defaultdict(lambda: ZERO)
    for row in (
        Withdrawal.objects.filter(status__in=Withdrawal.OPEN)
        .values("firm_id", "currency")
        .annotate(total=money_sum("amount"))
    ):
        pending[(row["firm_id"], row["currency"])] = row["total"]
    on_hold = {(a.firm_id, a.currency): a.balance for a in Account.objects.filter(kind=Account.Kind.WITHDRAWAL)}
    for key in set(pending) | set(on_hold):
        if pending.get(key, ZERO) != on_hold.get(key, ZERO):
            problems.append(
                f"withdrawals of firm {key[0]} in {key[1]}: account {on_hold.get(key, ZERO)}, open {pending.get(key, ZERO)}"
            )

    owed = dict(
        Account.objects.exclude(kind=Account.Kind.BANK_CLEARING)
        .values("currency")
        .annotate(total=money_sum("balance"))
        .values_list("currency", "total")
    )
    bank = dict(Account.objects.filter(kind=Account.Kind.BANK_CLEARING).values_list("currency", "balance"))
    for currency in set(owed) | set(bank):
        if owed.get(currency, ZERO) != bank.get(currency, ZERO):
            problems.append(
                f"the bank holds {bank.get(currency, ZERO)} {currency}, members and fees {owed.get(currency, ZERO)}"
            )
    return problems


@dataclass(frozen=True)
class TrialBalanceRow:
    currency: str
    kind: str
    debit: Decimal
    credit: Decimal


# Orders released at some point and not closed since: each has its entitlement (ended or not, by its own term).
ENTITLED = (
    Order.Status.RELEASED,
    Order.Status.DELIVERED,
    Order.Status.ACCEPTED,
    Order.Status.SETTLED,
    Order.Status.DISPUTED,
)


def entitlement_problems() -> list[str]:
    """The invariants between orders and their entitlements that do not hold now (none when sound): an order
    released and not cancelled or refunded has its entitlement; one never released has none; a cancelled or
    refunded order's is ended; an entitlement is its order's buyer's, product's and revision's."""
    problems = [
        f"order {pk} is {status} but has no entitlement"
        for pk, status in Order.objects.filter(status__in=ENTITLED, entitlement__isnull=True).values_list(
            "pk", "status"
        )
    ]
    never = (Order.Status.CREATED, Order.Status.COMPLIANCE_HOLD, Order.Status.REFUSED)
    for pk, order_id in Entitlement.objects.filter(order__status__in=never).values_list("pk", "order_id"):
        problems.append(f"entitlement {pk} belongs to order {order_id}, which was never released")
    closed = (Order.Status.CANCELLED, Order.Status.REFUNDED)
    live = Entitlement.objects.filter(status__in=Entitlement.LIVE)
    for pk, order_id in live.filter(order__status__in=closed).values_list("pk", "order_id"):
        problems.append(f"entitlement {pk} has not ended but its order {order_id} was cancelled or refunded")
    mismatched = Entitlement.objects.exclude(
        buyer_firm_id=F("order__buyer_firm_id"), product_id=F("order__product_id"), revision_id=F("order__revision_id")
    )
    for pk in mismatched.values_list("pk", flat=True):
        problems.append(f"entitlement {pk} is not of its order's buyer, product and revision")
    # Usage charged once, from its own period's budget, for what the budget paid out (the rest went back).
    for usage in Usage.objects.filter(charge__isnull=False).select_related("charge", "entitlement"):
        charge = usage.charge
        assert charge is not None
        if charge.order_id != usage.entitlement.order_id or charge.period_start != usage.period_start:
            problems.append(f"usage {usage.pk} was charged from charge {charge.pk}, not its own period's budget")
        if charge.status != Charge.Status.HELD and charge.provider_net + charge.fee_collected != usage.charged:
            problems.append(
                f"usage {usage.pk} charged {usage.charged}, its budget paid out {charge.provider_net + charge.fee_collected}"
            )
    for pk in Usage.objects.filter(closed_at__isnull=True, charge__isnull=False).values_list("pk", flat=True):
        problems.append(f"usage {pk} was charged but is not closed")
    return problems


def trial_balance() -> list[TrialBalanceRow]:
    """Debits and credits per currency and kind of account (they sum to the same per currency)."""
    rows = (
        Posting.objects.values("currency", "account__kind")
        .annotate(
            debit=Coalesce(money_sum("amount", filter=Q(amount__gt=0)), ZERO, output_field=AMOUNT),
            credit=Coalesce(money_sum("amount", filter=Q(amount__lt=0)), ZERO, output_field=AMOUNT),
        )
        .order_by("currency", "account__kind")
    )
    return [
        TrialBalanceRow(currency=r["currency"], kind=r["account__kind"], debit=r["debit"], credit=-r["credit"])
        for r in rows
    ]


def ledger_reconcile() -> list[tuple[int, Decimal, Decimal]]:
    """Accounts whose cached balance differs from their postings: (account id, cached, from postings)."""
    sums = dict(
        Posting.objects.values("account_id").annotate(total=money_sum("amount")).values_list("account_id", "total")
    )
    out = []
    for pk, kind, balance in Account.objects.values_list("pk", "kind", "balance"):
        sign = 1 if kind in Account.DEBIT_NORMAL else -1
        expected = sums.get(pk, ZERO) * sign
        if expected != balance:
            out.append((pk, balance, expected))
    return out


def firm_for_deposit_reference(*, reference: str) -> MemberFirm | None:
    """The firm a bank transfer's payment reference names: its USCC or LEI, as the deposit instructions say."""
    return firm_get_by_public_code(code=reference.strip().upper())


def today_shanghai() -> date:
    return timezone.localdate()


# --- What an order would be: the checks and the amounts, shared by the quote and the placement -------------------

ORDER_ROLES = (Membership.Role.FIRM_ADMIN, Membership.Role.TRADER)


@dataclass(frozen=True)
class ChargeTerms:
    kind: str
    fees: Fees
    period_start: date | None = None
    period_end: date | None = None

    @property
    def total(self) -> Decimal:
        return self.fees.buyer_pays


@dataclass(frozen=True)
class OrderTerms:
    """A checked order, not yet placed: who buys what, how it is delivered, and what it costs."""

    buyer_firm: MemberFirm
    product: DataProduct
    revision: Revision
    plan: PricePlan
    delivery_mode: str
    intended_use: str
    destination: str
    schedule: FeeSchedule
    charges: tuple[ChargeTerms, ...]
    access_request: AccessRequest | None
    day: date

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def price(self) -> Decimal:
        return sum((c.fees.price for c in self.charges if c.kind != Charge.Kind.USAGE_BUDGET), ZERO)

    @property
    def buyer_fee(self) -> Decimal:
        return sum((c.fees.buyer_fee for c in self.charges), ZERO)

    @property
    def provider_fee(self) -> Decimal:
        return sum((c.fees.provider_fee for c in self.charges), ZERO)

    @property
    def usage_budget(self) -> Decimal:
        return sum((c.fees.price for c in self.charges if c.kind == Charge.Kind.USAGE_BUDGET), ZERO)

    @property
    def total(self) -> Decimal:
        return sum((c.total for c in self.charges), ZERO)


def refuse(message: str, code: str, *, status: int = 422, field: str | None = None, **details: Any) -> ApplicationError:
    if field is not None:
        details = {field: [message], **details}
    return ApplicationError(message, code=code, status_code=status, details=details)


def period_end(start: date, period: str) -> date:
    """The last day of the billing period starting on `start` (a month: to the day before the same day next month)."""
    months = 12 if period == PricePlan.Period.YEAR else 1
    return start + relativedelta(months=months) - timedelta(days=1)


def _charges(plan: PricePlan, schedule: FeeSchedule, usage_budget: Decimal | None, day: date) -> list[ChargeTerms]:
    currency = plan.currency
    if plan.kind == PricePlan.Kind.ONE_OFF:
        charges = [ChargeTerms(Charge.Kind.PURCHASE, fees_for(price=plan.amount, schedule=schedule, currency=currency))]
    else:
        charges = [
            ChargeTerms(
                Charge.Kind.PERIOD,
                fees_for(price=plan.amount, schedule=schedule, currency=currency),
                period_start=day,
                period_end=period_end(day, plan.period),
            )
        ]
    if plan.kind == PricePlan.Kind.METERED and usage_budget:
        # Usage is charged (with its fees) at the end of the period, from this budget; what is not used then goes back
        # to the buyer (settlements.services.orders.usage_budgets_close). Nothing of it is earned at the order.
        charges.append(
            ChargeTerms(
                Charge.Kind.USAGE_BUDGET,
                Fees(price=usage_budget, buyer_fee=ZERO, provider_fee=ZERO),
                period_start=day,
                period_end=period_end(day, plan.period),
            )
        )
    return [c for c in charges if c.total > 0]


def order_terms(
    *,
    user: Any,
    product_id: Any,
    plan_id: Any,
    delivery_mode: str,
    intended_use: str = "",
    destination: str = "",
    usage_budget: Decimal | None = None,
    for_update: bool = False,
) -> OrderTerms:
    """Check an order the user would place and work out its amounts; an ApplicationError with a code says why
    not. Read-only: the quote calls it as it is, the placement inside its transaction (`for_update` then takes
    a share lock on the product and the plan on PostgreSQL, so a suspension or a retirement waits for the orders
    in flight and no order slips in after one)."""
    membership = user_membership(user)
    if membership is None or membership.role not in ORDER_ROLES:
        raise NotAllowed(_("Orders are placed by a member firm's administrators and traders."), code="not_allowed")
    buyer = membership.firm
    if not buyer.is_kyc_verified:
        raise NotAllowed(_("Your firm is not verified yet: it cannot trade."), code="firm_not_verified")
    access_to_boards = board_access(user=user)
    product = _product_for_order(
        user=user, firm_id=buyer.pk, visible=access_to_boards.visible, pk=product_id, lock=for_update
    )
    problems: dict[str, list[str]] = {}
    if product.provider_id == buyer.pk:
        raise refuse(_("This is your own firm's product."), "own_product", status=403)
    if product.listing_status == ListingStatus.SUSPENDED:
        raise refuse(_("Trading in this product is suspended."), "suspended", status=409)
    revision = product.listed_revision
    if product.listing_status != ListingStatus.LISTED or revision is None:
        raise refuse(_("Only a listed product can be traded."), "not_listed", status=409)
    if product.board_id not in access_to_boards.tradable:
        raise refuse(_("Your firm is not admitted to trade on this board."), "board_not_tradable", status=403)
    if firm_is_restricted(buyer):
        # The compliance engine prohibits it too (R3); said first and plainly: no trade for a listed party at all.
        raise refuse(
            _("Your firm is on a restricted-party list: the exchange cannot trade with it."),
            "restricted_party",
            status=403,
        )
    plan_pk = _int(plan_id) or 0
    if for_update and 0 < plan_pk < 2**63:
        # Share-locked before it is read (as the product): a retirement waits for this order, and what is read
        # below is the plan as committed once the lock is held.
        share_lock(PricePlan, plan_pk)
    plan = PricePlan.objects.filter(pk=plan_pk, product=product).filter(plans_visible_q(buyer.pk)).first()
    if (
        plan is None
        and PricePlan.objects.filter(pk=plan_pk, product=product, is_active=False)
        .filter(Q(buyer_firm__isnull=True) | Q(buyer_firm_id=buyer.pk))
        .exists()
    ):
        raise refuse(_("This price plan is retired."), "plan_retired", status=409, field="plan")
    if plan is None:
        raise refuse(_("This product has no such plan for you."), "plan_not_found", field="plan")
    if delivery_mode not in revision.delivery_modes:
        problems["delivery_mode"] = [
            _("This product is not delivered that way (offered: %(modes)s).")
            % {"modes": ", ".join(revision.delivery_modes)}
        ]
    if plan.currency not in product.board.settlement_currencies:
        problems["plan"] = [_("The board does not settle in this plan's currency.")]
    intended_use = intended_use.strip()
    access = None
    if revision.requires_approval:
        access = access_request_usable(
            buyer_firm=buyer, product=product, revision_number=revision.number, for_update=for_update
        )
        if access is None:
            raise refuse(
                _("The provider approves each buyer of this product: file an access request first."),
                "access_request_required",
                status=409,
            )
        # The order keeps the use the provider approved: another one stated now would need its own approval.
        if intended_use and intended_use != access.intended_use.strip():
            problems["intended_use"] = [
                _("The provider approved this use: “%(use)s”. For another use, file a new access request.")
                % {"use": access.intended_use}
            ]
        intended_use = access.intended_use
    if not intended_use:
        problems["intended_use"] = [_("Say what your firm will use the data for.")]
    country = str(buyer.country)
    destination = (destination or "").strip().upper() or country
    if destination != country:
        problems["destination"] = [
            _(
                "The exchange assesses transfers to the buyer's country of registration (%(country)s); "
                "a transfer elsewhere needs its own assessment: ask the exchange."
            )
            % {"country": country}
        ]
    if plan.kind == PricePlan.Kind.METERED:
        budget_problem = _budget_problem(usage_budget, plan.currency)
        if budget_problem:
            problems["usage_budget"] = [budget_problem]
    elif usage_budget:
        problems["usage_budget"] = [_("Only a metered plan holds a usage budget.")]
    if problems:
        code = "delivery_not_offered" if list(problems) == ["delivery_mode"] else "validation_error"
        raise ApplicationError(_("The order is not valid; see details."), code=code, details=problems)
    day = timezone.localdate()
    schedule = fee_schedule_in_force(board=product.board, currency=plan.currency, day=day)
    if schedule is None:
        raise refuse(_("The exchange has no fees in force for this board and currency."), "no_fee_schedule", status=409)
    charges = tuple(_charges(plan, schedule, usage_budget, day))
    if charges and not for_update and not holds_currency(firm_id=buyer.pk, currency=plan.currency):
        # (The placement asks when it locks the buyer's accounts: settlements.services.orders.)
        raise currency_not_held(plan.currency)
    return OrderTerms(
        buyer_firm=buyer,
        product=product,
        revision=revision,
        plan=plan,
        delivery_mode=delivery_mode,
        intended_use=intended_use,
        destination=destination,
        schedule=schedule,
        charges=charges,
        access_request=access,
        day=day,
    )


def holds_currency(*, firm_id: int, currency: str) -> bool:
    return Account.objects.filter(firm_id=firm_id, kind=Account.Kind.CASH, currency=currency).exists()


def currency_not_held(currency: str) -> ApplicationError:
    return refuse(
        _("Your firm holds no %(currency)s at the exchange: deposit some first.") % {"currency": currency},
        "currency_not_held",
    )


def _product_for_order(*, user: Any, firm_id: int, visible: frozenset[int], pk: Any, lock: bool) -> DataProduct:
    """The product to order, with its board, provider and listed revision: 404 for what the catalogue does not show
    the user (listings.selectors.product_get_for_user decides that), except that the user's own firm's product and
    a product suspended on a board the user sees are answered (and then refused as such: they were on the user's
    screen). A listed product on a visible board, the case of every order, is settled with this one query.

    `lock` share-locks the product's row first (PostgreSQL), so that what is read is the row as committed once the
    lock is held: a suspension or a new listed revision waits for the orders in flight, and no order slips in after
    one."""
    product_pk = _int(pk)
    if product_pk is None or not 0 < product_pk < 2**63:
        raise Http404
    if lock:
        share_lock(DataProduct, product_pk)
    product = DataProduct.objects.select_related("board", "provider", "listed_revision").filter(pk=product_pk).first()
    if product is None:
        raise Http404
    if product.provider_id == firm_id:
        return product
    if product.board_id not in visible:
        raise Http404
    if product.listing_status in (ListingStatus.LISTED, ListingStatus.SUSPENDED):
        return product
    product_get_for_user(user=user, pk=product_pk)  # in public notice, say: seen, and refused as not listed
    return product


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _budget_problem(budget: Decimal | None, currency: str) -> str | None:
    if budget is None or budget <= 0:
        return _("A metered plan needs a usage budget, held in escrow and charged as you use it.")
    if not is_quantized(budget, currency):
        return _("Give the budget in whole minor units (e.g. 500.00).")
    if budget > settings.SETTLEMENT_MAX_USAGE_BUDGET:
        return _("The budget is larger than the exchange holds for one order.")
    return None


def share_lock(model: type[models.Model], pk: int) -> None:
    """SELECT ... FOR SHARE on PostgreSQL: writers of the row (a suspension, a retirement) wait until this
    transaction ends, while other readers that share-lock it do not wait for each other (unlike FOR UPDATE).
    SQLite locks the whole database on the first write instead."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE", [pk])  # noqa: S608  # the table name is ours


def access_request_usable(
    *, buyer_firm: MemberFirm, product: DataProduct, revision_number: int | None = None, for_update: bool = False
) -> AccessRequest | None:
    """The buyer's approved, unexpired and unused access request for the product (for its listed revision when
    `revision_number` is given: the provider approved what it saw), if any."""
    queryset = AccessRequest.objects.filter(
        buyer_firm=buyer_firm,
        product=product,
        status=AccessRequest.Status.APPROVED,
        approval_expires_at__gt=timezone.now(),
    )
    if revision_number is not None:
        queryset = queryset.filter(revision_number=revision_number)
    if for_update:
        queryset = queryset.select_for_update()
    return queryset.first()


# --- Orders, requests and withdrawals as each firm may see them --------------------------------------------------

MAX_ID = 2**63 - 1


def _pk(pk: Any) -> int:
    """A path's id as a row id, or 404: an id no row can have is as unknown as a missing one."""
    value = _int(pk)
    if value is None or not 1 <= value <= MAX_ID:
        raise Http404
    return value


def order_list_for_firm(*, firm_id: int, side: str | None = None, status: str | None = None) -> QuerySet[Order]:
    """The orders the firm placed or received (or one side), newest first, with what a page shows."""
    if side == "buyer":
        queryset = Order.objects.filter(buyer_firm_id=firm_id)
    elif side == "provider":
        queryset = Order.objects.filter(provider_firm_id=firm_id)
    else:
        queryset = Order.objects.filter(Q(buyer_firm_id=firm_id) | Q(provider_firm_id=firm_id))
    if status:
        queryset = queryset.filter(status=status)
    return (
        queryset.select_related("buyer_firm", "provider_firm")
        .prefetch_related(Prefetch("events", queryset=OrderEvent.objects.select_related("actor").order_by("pk")))
        .order_by("-id")
    )


# --- What a member firm sees of its trading (the portal; every list scoped to the firm, another firm's ids 404) ---


def order_list_bought(*, firm_id: int) -> QuerySet[Order]:
    """The firm's orders as the buyer, newest first, with what a list shows of the other side."""
    return Order.objects.filter(buyer_firm_id=firm_id).select_related("provider_firm").order_by("-created_at", "-id")


def order_list_sold(*, firm_id: int) -> QuerySet[Order]:
    """The firm's sales as the provider, newest first."""
    return Order.objects.filter(provider_firm_id=firm_id).select_related("buyer_firm").order_by("-created_at", "-id")


def order_with_timeline(order: Order) -> Order:
    """The order in hand (one the caller has just placed or moved) with its timeline and who did each step read in
    one query: what the API answers, without reading the order itself again."""
    prefetch_related_objects(
        [order], Prefetch("events", queryset=OrderEvent.objects.select_related("actor").order_by("pk"))
    )
    return order


def order_get_for_firm(*, firm_id: int, pk: Any, with_events: bool = False) -> Order:
    """An order the firm bought or sold; 404 for any other (its existence is not the firm's to know). `with_events`:
    its timeline too, with who did each step (what the API answers), in one more query."""
    queryset = Order.objects.filter(Q(buyer_firm_id=firm_id) | Q(provider_firm_id=firm_id), pk=_pk(pk))
    if with_events:
        queryset = queryset.prefetch_related(
            Prefetch("events", queryset=OrderEvent.objects.select_related("actor").order_by("pk"))
        )
    order = queryset.select_related("buyer_firm", "provider_firm", "board", "placed_by").first()
    if order is None:
        raise Http404
    return order


def entitlement_list_for_firm(*, firm_id: int, status: str | None = None) -> QuerySet[Entitlement]:
    """The firm's entitlements as the buyer (what it may use), newest first, with the order and product a list
    shows. A provider sees its sales as orders, not the buyers' entitlements."""
    queryset = Entitlement.objects.filter(buyer_firm_id=firm_id)
    if status:
        queryset = queryset.filter(status=status)
    # Usage so far: the file downloads completed (the data gateway's calls and sandbox queries come with them).
    queryset = queryset.annotate(
        downloads_completed=models.Count("downloads", filter=Q(downloads__completed_at__isnull=False))
    )
    return queryset.select_related("order", "product__provider", "revision").order_by("-starts_at", "-id")


def entitlement_get_for_firm(*, firm_id: int, pk: Any) -> Entitlement:
    """One of the firm's entitlements; 404 for any other firm's (its existence is not theirs to know)."""
    entitlement = entitlement_list_for_firm(firm_id=firm_id).filter(pk=_pk(pk)).first()
    if entitlement is None:
        raise Http404
    return entitlement


def entitlement_usable(entitlement: Entitlement, *, now: Any = None) -> bool:
    """Whether data may be delivered under it now: active, within its term, and the product still listed (a
    suspension or delisting ends it through the outbox; this answers at once, before the relay has run)."""
    now = now or timezone.now()
    return entitlement.usable_at(now) and entitlement.product.listing_status == ListingStatus.LISTED


# --- Data credentials and usage (API delivery) ----------------------------------------------------------------------


def data_credential_for_gateway(*, prefix: str) -> DataCredential | None:
    """The credential of `prefix` with all the data gateway asks of each call, in one query: its entitlement, the
    entitlement's order (delivered by its first call) and product (listed? which revision is listed?). (The datasets
    in the same query would join seven tables, which PostgreSQL takes longer to plan than a second query costs.)"""
    return (
        DataCredential.objects.select_related("entitlement__order", "entitlement__product", "created_by__membership")
        # The columns a call reads, no more: the order's snapshot and the product's listing are wide, and every call
        # would fetch and decode them.
        .only(
            "prefix",
            "key_hash",
            "revoked_at",
            "last_used_at",
            "entitlement_id",
            "created_by__is_active",
            "created_by__membership__firm_id",
            *(f"entitlement__{name}" for name in GATEWAY_ENTITLEMENT_FIELDS),
            "entitlement__product__listing_status",
            "entitlement__product__listed_revision_id",
            "entitlement__order__status",
        )  # fmt: skip
        .filter(prefix=prefix)
        .first()
    )


# What the data gateway and its meter read of an entitlement (settlements.services.metering: its term and quota).
GATEWAY_ENTITLEMENT_FIELDS = (
    "order_id", "buyer_firm_id", "product_id", "revision_id", "follows_revisions", "delivery_mode", "starts_at",
    "ends_at", "calls_included", "status", "end_reason",
)  # fmt: skip


def data_credential_live(*, entitlement: Entitlement) -> DataCredential | None:
    """The entitlement's credential that works, if any (at most one does)."""
    return (
        DataCredential.objects.filter(entitlement=entitlement, revoked_at__isnull=True)
        .select_related("created_by")
        .first()
    )


def data_credentials_live(*, entitlement_ids: list[int]) -> dict[int, DataCredential]:
    """Per entitlement of `entitlement_ids`, its credential that works (one query for a page of entitlements)."""
    live = DataCredential.objects.filter(entitlement_id__in=entitlement_ids, revoked_at__isnull=True)
    return {credential.entitlement_id: credential for credential in live}


def usage_open_for_entitlements(*, entitlement_ids: list[int], today: date | None = None) -> dict[int, Usage]:
    """Per entitlement of `entitlement_ids`, its usage period that today (Asia/Shanghai) falls in, if a call made it
    (the meter's current one; a period ended, still waiting for its charge, is not today's), in one query."""
    today = today or timezone.localdate()
    found: dict[int, Usage] = {}
    current = Usage.objects.filter(entitlement_id__in=entitlement_ids, period_start__lte=today).filter(
        Q(period_end__isnull=True) | Q(period_end__gte=today)
    )
    for usage in current.order_by("entitlement_id", "-period_start"):
        found.setdefault(usage.entitlement_id, usage)
    return found


def usage_list_for_entitlement(*, entitlement: Entitlement) -> QuerySet[Usage]:
    """The entitlement's usage periods, the latest first."""
    return Usage.objects.filter(entitlement=entitlement).order_by("-period_start", "-id")


def access_request_list_for_firm(
    *, firm_id: int, side: str | None = None, status: str | None = None
) -> QuerySet[AccessRequest]:
    if side == "buyer":
        queryset = AccessRequest.objects.filter(buyer_firm_id=firm_id)
    elif side == "provider":
        queryset = AccessRequest.objects.filter(product__provider_id=firm_id)
    else:
        queryset = AccessRequest.objects.filter(Q(buyer_firm_id=firm_id) | Q(product__provider_id=firm_id))
    if status:
        queryset = queryset.filter(status=status)
    return queryset.select_related("buyer_firm", "product", "requested_by").order_by("-id")


def order_events(*, order: Order) -> QuerySet[OrderEvent]:
    """The order's timeline, oldest first, with each actor's firm (to name the actor as the viewer may know it)."""
    return order.events.select_related("actor__membership__firm").order_by("created_at", "id")


def access_request_list_for_buyer(*, firm_id: int) -> QuerySet[AccessRequest]:
    return (
        AccessRequest.objects.filter(buyer_firm_id=firm_id)
        .select_related("product__provider", "product__listed_revision", "order")
        .order_by("-created_at", "-id")
    )


def access_request_list_for_provider(*, firm_id: int) -> QuerySet[AccessRequest]:
    return (
        AccessRequest.objects.filter(product__provider_id=firm_id)
        .select_related("buyer_firm", "requested_by", "product__listed_revision", "order")
        .order_by("-created_at", "-id")
    )


def access_request_get_for_firm(*, firm_id: int, pk: Any) -> AccessRequest:
    """A request the firm filed (as the buyer) or received (as the provider); 404 for any other."""
    request = (
        AccessRequest.objects.filter(Q(buyer_firm_id=firm_id) | Q(product__provider_id=firm_id), pk=_pk(pk))
        .select_related("buyer_firm", "requested_by", "decided_by", "product__provider", "product__listed_revision")
        .first()
    )
    if request is None:
        raise Http404
    return request


def access_request_latest(*, buyer_firm_id: int, product_id: int) -> AccessRequest | None:
    """The buyer's most recent request for the product (what the product page says about it)."""
    return (
        AccessRequest.objects.filter(buyer_firm_id=buyer_firm_id, product_id=product_id)
        .order_by("-created_at", "-id")
        .first()
    )


def withdrawal_list_for_firm(*, firm_id: int) -> QuerySet[Withdrawal]:
    return Withdrawal.objects.filter(firm_id=firm_id).select_related("requested_by").order_by("-requested_at", "-id")


def withdrawal_get_for_firm(*, firm_id: int, pk: Any) -> Withdrawal:
    withdrawal = Withdrawal.objects.filter(firm_id=firm_id, pk=_pk(pk)).first()
    if withdrawal is None:
        raise Http404
    return withdrawal


def deposit_list_for_firm(*, firm_id: int) -> QuerySet[Deposit]:
    return Deposit.objects.filter(firm_id=firm_id).order_by("-booked_at", "-id")


def account_of_firm(*, firm_id: int, kind: str, currency: str) -> Account | None:
    return Account.objects.filter(firm_id=firm_id, kind=kind, currency=currency).first()


def account_change_after(*, account: Account, posting_id: int) -> Decimal:
    """How much the account's balance moved through its postings after this one: a page of statement lines,
    newest first, runs its balance back from the cached balance with one sum, whatever the ledger's size."""
    total = Posting.objects.filter(account=account, id__gt=posting_id).aggregate(
        total=Coalesce(money_sum("amount"), ZERO, output_field=AMOUNT)
    )["total"]
    return quantize(total, account.currency) * account.sign


# --- The sandbox's query log ------------------------------------------------------------------------------------


def sandbox_query_list(*, entitlement: Entitlement) -> QuerySet[SandboxQuery]:
    """The queries asked under an entitlement, newest first (its buyer firm's to read; the caller scoped it)."""
    return SandboxQuery.objects.filter(entitlement=entitlement).select_related("user").order_by("-id")


def deliverable_dataset(entitlement: Entitlement) -> Dataset | None:
    """The file an entitlement delivers now: its revision's valid dataset; a subscription's, that of the newest
    revision listed after it (the one listed now, or one it superseded) that has a valid dataset and is offered the
    entitlement's way: a revision no longer offered by the sandbox has no sandbox rules, one no longer offered by
    the API was not meant for the gateway, so the subscription keeps the newest that was. One query (and the
    assessment's, for a sandbox subscription cleared as anonymised output: `_follows_cleared`)."""
    own = Q(revision_id=entitlement.revision_id)
    if entitlement.follows_revisions and entitlement.product.listed_revision_id:
        number = Revision.objects.filter(pk=entitlement.revision_id).values("number")
        own |= Q(
            Q(revision_id=entitlement.product.listed_revision_id) | Q(revision__status=Revision.Status.SUPERSEDED),
            revision__product_id=entitlement.product_id,
            revision__number__gt=Subquery(number),
        )
    found = Dataset.objects.filter(own, status=Dataset.Status.VALID).select_related("revision")
    for dataset in found.order_by("-revision__number"):
        if dataset.revision_id == entitlement.revision_id:
            return dataset
        if entitlement.delivery_mode in dataset.revision.delivery_modes and _follows_cleared(entitlement, dataset):
            return dataset
    return None


def _follows_cleared(entitlement: Entitlement, dataset: Dataset) -> bool:
    """Whether a later revision is cleared for the subscription the way its own was: a sandbox subscription the
    gate cleared as anonymised output (R6) follows only a revision whose own anonymisation assessment is in force
    for the buyer's country (an assessment speaks for one revision's data and rules)."""
    if entitlement.delivery_mode != DeliveryMode.SANDBOX:
        return True
    if entitlement.order.snapshot.get("compliance", {}).get("rules", [])[:1] != ["R6"]:
        return True
    return sandbox_output_anonymised(
        product=entitlement.product,
        revision=dataset.revision,
        destination=str(entitlement.buyer_firm.country),
        day=timezone.localdate(),
    )
