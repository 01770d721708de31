"""Orders and the money behind them: the double-entry ledger, escrow, fees, deposits and withdrawals.

The ledger (Account, JournalEntry, Posting) is written only by `settlements.services.ledger.entry_post`; every
other money operation is a service that calls it. Amounts of postings are signed, debit positive: the postings
of an entry sum to zero per currency (enforced by the service on every database and by a deferred constraint
trigger on PostgreSQL), and postings are never changed or deleted (a trigger on PostgreSQL; corrections are
reversals). An account's `balance` is its balance on its normal side (what the exchange owes a member for the
member's accounts), cached under the account's row lock in the posting's transaction and reconciled nightly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

from exchange.models import AppendOnlyModel, Board, MemberFirm
from exchange.money import CURRENCY_CHOICES

# Ledger amounts: max_digits=18, decimal_places=2 on every money field (up to 10^16 in the currency's main unit,
# two places for CNY and USD).


class Account(models.Model):
    class Kind(models.TextChoices):
        CASH = "cash", _("Cash")
        ESCROW = "escrow", _("Escrow")
        PAYABLE = "payable", _("Payable")
        WITHDRAWAL = "withdrawal", _("Withdrawals in progress")
        FEE_REVENUE = "fee_revenue", _("Fee revenue")
        BANK_CLEARING = "bank_clearing", _("Bank clearing")

    # A member firm's accounts: what the exchange owes it (cash to spend or withdraw, escrow held for its open
    # orders, payables from accepted sales awaiting payout, withdrawals being paid). None may go below zero.
    MEMBER_KINDS = frozenset({Kind.CASH, Kind.ESCROW, Kind.PAYABLE, Kind.WITHDRAWAL})
    # The exchange's own: its fees earned, and the money in its bank account (the other side of deposits and
    # of withdrawals paid).
    EXCHANGE_KINDS = frozenset({Kind.FEE_REVENUE, Kind.BANK_CLEARING})
    # Assets are debit-normal; everything else here is what the exchange owes (or earned), credit-normal.
    DEBIT_NORMAL = frozenset({Kind.BANK_CLEARING})

    firm = models.ForeignKey(
        MemberFirm, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts", verbose_name=_("firm")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    balance = models.DecimalField(
        _("balance"), default=Decimal("0.00"), editable=False, max_digits=18, decimal_places=2
    )
    created_at = models.DateTimeField(_("opened at"), auto_now_add=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["firm_id", "currency", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["firm", "kind", "currency"], condition=Q(firm__isnull=False), name="account_firm_kind_currency"
            ),
            models.UniqueConstraint(
                fields=["kind", "currency"], condition=Q(firm__isnull=True), name="account_exchange_kind_currency"
            ),
            models.CheckConstraint(
                condition=(Q(firm__isnull=False) & Q(kind__in=["cash", "escrow", "payable", "withdrawal"]))
                | (Q(firm__isnull=True) & Q(kind__in=["fee_revenue", "bank_clearing"])),
                name="account_owner_matches_kind",
            ),
            # No member account below zero, whatever writes it: the last line behind the posting service's check.
            models.CheckConstraint(
                condition=Q(firm__isnull=True) | Q(balance__gte=0), name="account_member_balance_gte_0"
            ),
        ]

    def __str__(self) -> str:
        owner = str(self.firm) if self.firm_id else _("Exchange")
        return f"{owner} · {self.get_kind_display()} · {self.currency}"

    @property
    def sign(self) -> int:
        """+1 when a debit raises the balance (assets), -1 when a credit does."""
        return 1 if self.kind in self.DEBIT_NORMAL else -1


class JournalEntry(AppendOnlyModel):
    """One movement of money: postings that sum to zero per currency."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", _("Deposit")
        FUNDING = "funding", _("Order funded (cash to escrow)")
        SETTLEMENT = "settlement", _("Order settled (escrow to provider and fees)")
        REFUND = "refund", _("Order refunded (escrow to buyer)")
        WITHDRAWAL_HOLD = "withdrawal_hold", _("Withdrawal requested")
        WITHDRAWAL_PAID = "withdrawal_paid", _("Withdrawal paid")
        WITHDRAWAL_RETURN = "withdrawal_return", _("Withdrawal returned to cash")
        REVERSAL = "reversal", _("Reversal")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    # The business event this entry records, e.g. "charge:17" or "deposit:4": with the kind, unique, so an
    # operation retried (a task run twice, a request replayed) can never post its money twice.
    reference = models.CharField(_("reference"), max_length=64)
    memo = models.CharField(_("memo"), max_length=200, blank=True)
    charge = models.ForeignKey(
        "Charge", on_delete=models.PROTECT, null=True, blank=True, related_name="entries", verbose_name=_("charge")
    )
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by", verbose_name=_("reverses")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("posted at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("journal entry")
        verbose_name_plural = _("journal entries")
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["kind", "reference"], name="entry_kind_reference_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.reference}"


class Posting(AppendOnlyModel):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="postings")
    # Signed, debit positive. The account's currency, repeated so the database can check each entry per currency.
    amount = models.DecimalField(_("amount"), max_digits=18, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)

    class Meta:
        verbose_name = _("posting")
        verbose_name_plural = _("postings")
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="posting_amount_not_zero")]
        indexes = [models.Index(fields=["account", "id"], name="posting_account_id_idx")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.account_id}"


class FeeSchedule(models.Model):
    """The exchange's fees on a board's trades in one currency, in force from a date until the next version.

    Chinese exchanges charge both sides: a rate on the provider (the Shanghai Data Exchange published 2.5 %), and
    a fixed amount and/or a rate on the buyer. Once in force, a version is never edited: add the next one.
    """

    board = models.ForeignKey(Board, on_delete=models.PROTECT, related_name="fee_schedules", verbose_name=_("board"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    effective_from = models.DateField(_("in force from"), help_text=_("Asia/Shanghai date; until the next version."))
    provider_rate_bps = models.PositiveIntegerField(
        _("provider's rate (basis points)"),
        validators=[MaxValueValidator(5_000)],
        help_text=_("Charged to the provider on the price: 250 is 2.5 %."),
    )
    buyer_rate_bps = models.PositiveIntegerField(
        _("buyer's rate (basis points)"),
        default=0,
        validators=[MaxValueValidator(5_000)],
        help_text=_("Charged to the buyer on top of the price."),
    )
    buyer_fixed = models.DecimalField(
        _("buyer's fixed fee"),
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Charged to the buyer on top of the price, per order."),
        max_digits=18,
        decimal_places=2,
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("fee schedule")
        verbose_name_plural = _("fee schedules")
        ordering = ["board", "currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["board", "currency", "effective_from"], name="fee_schedule_version"),
            models.CheckConstraint(
                condition=Q(provider_rate_bps__lte=5_000) & Q(buyer_rate_bps__lte=5_000) & Q(buyer_fixed__gte=0),
                name="fee_schedule_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.board} · {self.currency} · {self.effective_from}"

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "board": self.board.code,
            "currency": self.currency,
            "effective_from": self.effective_from.isoformat(),
            "provider_rate_bps": self.provider_rate_bps,
            "buyer_rate_bps": self.buyer_rate_bps,
            "buyer_fixed": str(self.buyer_fixed),
        }


class FxRate(models.Model):
    """How many CNY one unit of a currency was worth on a day: for reporting only, never to convert money."""

    day = models.DateField(_("date"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    quote = models.CharField(_("in"), max_length=3, default="CNY", editable=False)
    rate = models.DecimalField(
        _("rate"), max_digits=18, decimal_places=8, validators=[MinValueValidator(Decimal("0.00000001"))]
    )
    source = models.CharField(_("source"), max_length=100, help_text=_("E.g. the CFETS central parity rate."))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("FX rate")
        verbose_name_plural = _("FX rates")
        ordering = ["-day", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["day", "currency", "quote"], name="fx_rate_day_pair"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="fx_rate_positive"),
            models.CheckConstraint(condition=~Q(currency=F("quote")), name="fx_rate_two_currencies"),
        ]

    def __str__(self) -> str:
        return f"{self.day} 1 {self.currency} = {self.rate} {self.quote}"


class AccessRequest(models.Model):
    """A buyer's request to buy a product whose provider approves each buyer, stating the intended use."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the provider")
        APPROVED = "approved", _("Approved")
        DECLINED = "declined", _("Declined")
        EXPIRED = "expired", _("Expired")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        USED = "used", _("Used by an order")

    ALLOWED: dict[str, set[str]] = {
        Status.PENDING: {Status.APPROVED, Status.DECLINED, Status.EXPIRED, Status.WITHDRAWN},
        Status.APPROVED: {Status.USED, Status.EXPIRED},
        Status.DECLINED: set(),
        Status.EXPIRED: set(),
        Status.WITHDRAWN: set(),
        Status.USED: set(),
    }

    buyer_firm = models.ForeignKey(
        MemberFirm, on_delete=models.PROTECT, related_name="access_requests", verbose_name=_("buyer")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    product = models.ForeignKey(
        "listings.DataProduct", on_delete=models.PROTECT, related_name="access_requests", verbose_name=_("product")
    )
    revision_number = models.PositiveIntegerField(_("revision"))
    intended_use = models.TextField(_("intended use"), max_length=2000)
    destination = CountryField(_("destination"), blank=True, help_text=_("Where the data will be used, abroad."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("requested at"), default=timezone.now)
    expires_at = models.DateTimeField(_("answer due by"))
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision_reason = models.TextField(_("provider's reason"), blank=True)
    approval_expires_at = models.DateTimeField(_("approval good until"), null=True, blank=True)

    class Meta:
        verbose_name = _("access request")
        verbose_name_plural = _("access requests")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One request at a time per buyer and product: waiting, or approved and not yet used.
            models.UniqueConstraint(
                fields=["buyer_firm", "product"],
                condition=Q(status__in=["pending", "approved"]),
                name="access_request_one_open",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="access_request_due_idx")]

    def __str__(self) -> str:
        return f"{self.buyer_firm} → {self.product_id} ({self.get_status_display()})"


class Order(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", _("Created")
        COMPLIANCE_HOLD = "compliance_hold", _("Held by compliance")
        RELEASED = "released", _("Released for delivery")
        DELIVERED = "delivered", _("Delivered")
        ACCEPTED = "accepted", _("Accepted")
        SETTLED = "settled", _("Settled")
        DISPUTED = "disputed", _("Disputed")
        CANCELLED = "cancelled", _("Cancelled")
        REFUSED = "refused", _("Refused by compliance")
        REFUNDED = "refunded", _("Refunded")

    ALLOWED: dict[str, set[str]] = {
        Status.CREATED: {Status.COMPLIANCE_HOLD, Status.RELEASED},
        Status.COMPLIANCE_HOLD: {Status.RELEASED, Status.REFUSED, Status.CANCELLED},
        Status.RELEASED: {Status.DELIVERED, Status.CANCELLED, Status.REFUNDED},
        Status.DELIVERED: {Status.ACCEPTED, Status.DISPUTED, Status.REFUNDED},
        Status.DISPUTED: {Status.ACCEPTED, Status.REFUNDED},
        Status.ACCEPTED: {Status.SETTLED},
        Status.SETTLED: set(),
        Status.CANCELLED: set(),
        Status.REFUSED: set(),
        Status.REFUNDED: set(),
    }
    # Orders whose money is still in escrow and whose outcome is open.
    OPEN = frozenset(
        {Status.CREATED, Status.COMPLIANCE_HOLD, Status.RELEASED, Status.DELIVERED, Status.DISPUTED, Status.ACCEPTED}
    )

    buyer_firm = models.ForeignKey(MemberFirm, on_delete=models.PROTECT, related_name="orders", verbose_name=_("buyer"))
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("placed by")
    )
    provider_firm = models.ForeignKey(
        MemberFirm, on_delete=models.PROTECT, related_name="sales", verbose_name=_("provider")
    )
    board = models.ForeignKey(Board, on_delete=models.PROTECT, related_name="+", verbose_name=_("board"))
    product = models.ForeignKey(
        "listings.DataProduct", on_delete=models.PROTECT, related_name="orders", verbose_name=_("product")
    )
    revision = models.ForeignKey(
        "listings.Revision", on_delete=models.PROTECT, related_name="orders", verbose_name=_("revision")
    )
    plan = models.ForeignKey(
        "listings.PricePlan", on_delete=models.PROTECT, related_name="orders", verbose_name=_("plan")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.CREATED)

    # What was bought, as it was when it was bought: never changed afterwards (a trigger on PostgreSQL).
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    price = models.DecimalField(_("price"), max_digits=18, decimal_places=2)
    buyer_fee = models.DecimalField(_("buyer's fee"), max_digits=18, decimal_places=2)
    provider_fee = models.DecimalField(_("provider's fee"), max_digits=18, decimal_places=2)
    usage_budget = models.DecimalField(_("usage budget"), default=Decimal("0.00"), max_digits=18, decimal_places=2)
    delivery_mode = models.CharField(_("delivery"), max_length=10)
    intended_use = models.TextField(_("intended use"), max_length=2000)
    destination = CountryField(_("destination"), blank=True)
    snapshot = models.JSONField(_("what was bought"), editable=False)
    assessment = models.ForeignKey(
        "compliance.Assessment", on_delete=models.PROTECT, related_name="+", verbose_name=_("compliance assessment")
    )
    case = models.ForeignKey(
        "compliance.ComplianceCase",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("compliance case"),
    )
    access_request = models.OneToOneField(
        AccessRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="order"
    )

    created_at = models.DateTimeField(_("placed at"), default=timezone.now, db_index=True)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    acceptance_due_at = models.DateTimeField(_("accepted automatically at"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    reason = models.TextField(
        _("reason"), blank=True, help_text=_("Why it was cancelled, refused, disputed or refunded.")
    )

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gte=0) & Q(buyer_fee__gte=0) & Q(provider_fee__gte=0) & Q(usage_budget__gte=0),
                name="order_amounts_gte_0",
            ),
            models.CheckConstraint(condition=Q(provider_fee__lte=F("price")), name="order_provider_fee_lte_price"),
            models.CheckConstraint(condition=~Q(buyer_firm=F("provider_firm")), name="order_not_own_product"),
        ]
        indexes = [
            models.Index(fields=["buyer_firm", "-created_at"], name="order_buyer_idx"),
            models.Index(fields=["provider_firm", "-created_at"], name="order_provider_idx"),
            models.Index(fields=["status", "acceptance_due_at"], name="order_acceptance_due_idx"),
        ]
        permissions = [("refund_order", _("Can refund orders and resolve disputes"))]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        """The order's number as people quote it."""
        return f"DX-{self.pk:08d}" if self.pk else "DX-(new)"

    @property
    def total(self) -> Decimal:
        """What the buyer paid into escrow at the order: the price, the buyer's fee and any usage budget."""
        return self.price + self.buyer_fee + self.usage_budget

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class OrderEvent(models.Model):
    """The order's timeline: every change of state and every note, with who and when (append-only)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("what"), max_length=32)
    old_status = models.CharField(_("from"), max_length=16, blank=True)
    new_status = models.CharField(_("to"), max_length=16, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order} {self.kind}"


class Charge(models.Model):
    """Money an order holds in escrow: the one-off price, a subscription's or metered plan's period, or a
    metered plan's usage budget. Each is funded once, then settled to the provider or returned to the buyer.

    An order has several over its life (a renewal each period), so the ledger keys its entries on the charge.
    """

    class Kind(models.TextChoices):
        PURCHASE = "purchase", _("Purchase")
        PERIOD = "period", _("Subscription period")
        USAGE_BUDGET = "usage_budget", _("Usage budget")

    class Status(models.TextChoices):
        HELD = "held", _("Held in escrow")
        SETTLED = "settled", _("Settled")
        REFUNDED = "refunded", _("Returned")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="charges")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    sequence = models.PositiveIntegerField(_("period"), default=1)
    period_start = models.DateField(_("period from"), null=True, blank=True)
    period_end = models.DateField(_("period to"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    price = models.DecimalField(_("price"), max_digits=18, decimal_places=2)
    buyer_fee = models.DecimalField(_("buyer's fee"), max_digits=18, decimal_places=2)
    provider_fee = models.DecimalField(_("provider's fee"), max_digits=18, decimal_places=2)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.HELD)
    # How the held amount ended: returned to the buyer, paid to the provider, and earned in fees, summing to what
    # it held (settlements.selectors.ledger_problems checks it; SQLite would compare the sums as floats).
    refunded = models.DecimalField(_("returned"), default=Decimal("0.00"), max_digits=18, decimal_places=2)
    provider_net = models.DecimalField(
        _("paid to the provider"), default=Decimal("0.00"), max_digits=18, decimal_places=2
    )
    fee_collected = models.DecimalField(_("fees earned"), default=Decimal("0.00"), max_digits=18, decimal_places=2)
    created_at = models.DateTimeField(_("held at"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("charge")
        verbose_name_plural = _("charges")
        ordering = ["order", "kind", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["order", "kind", "sequence"], name="charge_order_kind_sequence"),
            models.CheckConstraint(
                condition=Q(price__gte=0)
                & Q(buyer_fee__gte=0)
                & Q(provider_fee__gte=0)
                & Q(refunded__gte=0)
                & Q(provider_net__gte=0)
                & Q(fee_collected__gte=0),
                name="charge_amounts_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order} · {self.get_kind_display()} {self.sequence}"

    @property
    def total(self) -> Decimal:
        """What the charge holds in escrow."""
        return self.price + self.buyer_fee


class Deposit(models.Model):
    """Money a firm sent to the exchange's bank account, booked to its cash by a settlement clerk."""

    firm = models.ForeignKey(MemberFirm, on_delete=models.PROTECT, related_name="deposits", verbose_name=_("firm"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    amount = models.DecimalField(
        _("amount"), validators=[MinValueValidator(Decimal("0.01"))], max_digits=18, decimal_places=2
    )
    bank_reference = models.CharField(
        _("bank reference"), max_length=64, help_text=_("The bank's own reference of the credit, unique.")
    )
    value_date = models.DateField(_("value date"))
    statement = models.ForeignKey(
        "BankStatement", on_delete=models.PROTECT, null=True, blank=True, related_name="deposits"
    )
    entry = models.OneToOneField(JournalEntry, on_delete=models.PROTECT, related_name="deposit", editable=False)
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("booked by")
    )
    booked_at = models.DateTimeField(_("booked at"), default=timezone.now)

    class Meta:
        verbose_name = _("deposit")
        verbose_name_plural = _("deposits")
        ordering = ["-booked_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["bank_reference"], name="deposit_bank_reference_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.bank_reference} · {self.amount} {self.currency}"


class BankStatement(models.Model):
    """An imported bank statement (CSV) and its report: which lines were booked and which were refused, why."""

    file_name = models.CharField(_("file"), max_length=200)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField(_("imported at"), default=timezone.now)
    booked = models.PositiveIntegerField(_("lines booked"), default=0)
    refused = models.PositiveIntegerField(_("lines refused"), default=0)
    report = models.JSONField(_("report"), default=list)

    class Meta:
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        ordering = ["-imported_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.imported_at:%Y-%m-%d %H:%M})"


class Withdrawal(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        AWAITING_SECOND = "awaiting_second", _("Waiting for a second approval")
        APPROVED = "approved", _("Approved for payment")
        PAID = "paid", _("Paid")
        REJECTED = "rejected", _("Rejected")
        CANCELLED = "cancelled", _("Cancelled")

    ALLOWED: dict[str, set[str]] = {
        Status.REQUESTED: {Status.AWAITING_SECOND, Status.APPROVED, Status.REJECTED, Status.CANCELLED},
        Status.AWAITING_SECOND: {Status.APPROVED, Status.REJECTED},
        Status.APPROVED: {Status.PAID, Status.REJECTED},
        Status.PAID: set(),
        Status.REJECTED: set(),
        Status.CANCELLED: set(),
    }
    OPEN = frozenset({Status.REQUESTED, Status.AWAITING_SECOND, Status.APPROVED})

    firm = models.ForeignKey(MemberFirm, on_delete=models.PROTECT, related_name="withdrawals", verbose_name=_("firm"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    amount = models.DecimalField(
        _("amount"), validators=[MinValueValidator(Decimal("0.01"))], max_digits=18, decimal_places=2
    )
    bank_account = models.TextField(
        _("to bank account"), max_length=500, help_text=_("Account holder, number and bank, as on the firm's file.")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    second_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    second_approved_at = models.DateTimeField(_("second approval at"), null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    bank_reference = models.CharField(_("bank reference of the payment"), max_length=64, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("withdrawal")
        verbose_name_plural = _("withdrawals")
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_amount_gt_0"),
            # Four eyes: the second approval is never the first approver's.
            models.CheckConstraint(
                condition=Q(second_approved_by__isnull=True) | ~Q(second_approved_by=F("approved_by")),
                name="withdrawal_second_approver_differs",
            ),
        ]
        permissions = [("approve_withdrawal", _("Can approve and pay withdrawals"))]

    def __str__(self) -> str:
        return f"W-{self.pk:06d} · {self.amount} {self.currency}" if self.pk else "W-(new)"


class Entitlement(models.Model):
    """An order's right to the data: which revision (a subscription's, the later ones too), by which delivery mode,
    from when until when, with which quota, under the licence the order copied. Made when the order is released;
    ended, for good, when the order is cancelled or refunded, its term runs out, the product is suspended or
    delisted, compliance revokes the filing it relied on, or staff revoke it. Every access path (download links,
    the data gateway, the sandbox) asks `usable_at` and refuses at once afterwards."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        LAPSED = "lapsed", _("Lapsed: renewal unpaid")
        ENDED = "ended", _("Ended")

    class EndReason(models.TextChoices):
        CANCELLED = "cancelled", _("The order was cancelled")
        REFUNDED = "refunded", _("The order was refunded")
        EXPIRED = "expired", _("The licence term ran out")
        LAPSED = "lapsed", _("The subscription lapsed")
        SUSPENDED = "suspended", _("The product was suspended")
        DELISTED = "delisted", _("The product was delisted")
        COMPLIANCE = "compliance", _("The export is no longer cleared (a filing revoked or lapsed)")
        REVOKED = "revoked", _("Revoked by the exchange")
        STOPPED = "stopped", _("The buyer stopped the subscription")
        UNDELIVERED = "undelivered", _("Not delivered within its first period")

    # A subscription whose renewal the buyer's cash could not pay lapses; paid within the grace period, it is active
    # again; otherwise it ends. Every other end is from active or lapsed, for good.
    ALLOWED: dict[str, set[str]] = {
        Status.ACTIVE: {Status.LAPSED, Status.ENDED},
        Status.LAPSED: {Status.ACTIVE, Status.ENDED},
        Status.ENDED: set(),
    }
    LIVE = (Status.ACTIVE, Status.LAPSED)

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="entitlement", verbose_name=_("order"))
    # The order's, copied: every access check and every list reads the entitlement alone.
    buyer_firm = models.ForeignKey(
        MemberFirm, on_delete=models.PROTECT, related_name="entitlements", verbose_name=_("buyer")
    )
    product = models.ForeignKey(
        "listings.DataProduct", on_delete=models.PROTECT, related_name="entitlements", verbose_name=_("product")
    )
    revision = models.ForeignKey(
        "listings.Revision", on_delete=models.PROTECT, related_name="+", verbose_name=_("revision")
    )
    follows_revisions = models.BooleanField(
        _("later revisions included"),
        default=False,
        help_text=_("A subscription's: the revisions listed after it too."),
    )
    renews = models.BooleanField(
        _("renews automatically"),
        default=False,
        help_text=_("A subscription's, until the buyer stops it: the next period is charged when this one ends."),
    )
    delivery_mode = models.CharField(_("delivery"), max_length=10)
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"), null=True, blank=True, help_text=_("Empty: the licence has no end."))
    calls_included = models.PositiveIntegerField(
        _("calls included per period"), null=True, blank=True, help_text=_("API and sandbox delivery; empty: no quota.")
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    grace_until = models.DateTimeField(
        _("renewal possible until"),
        null=True,
        blank=True,
        help_text=_("A lapsed subscription: paid by then, it renews."),
    )
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    end_reason = models.CharField(_("why it ended"), max_length=16, choices=EndReason.choices, blank=True)
    end_note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("entitlement")
        verbose_name_plural = _("entitlements")
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")), name="entitlement_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(status="lapsed", grace_until__isnull=False) | (~Q(status="lapsed") & Q(grace_until=None)),
                name="entitlement_lapsed_has_grace",
            ),
            models.CheckConstraint(
                condition=(Q(status__in=["active", "lapsed"]) & Q(ended_at__isnull=True) & Q(end_reason=""))
                | (Q(status="ended") & Q(ended_at__isnull=False) & ~Q(end_reason="")),
                name="entitlement_end_recorded",
            ),
        ]
        indexes = [
            models.Index(fields=["buyer_firm", "-starts_at"], name="entitlement_buyer_idx"),
            models.Index(fields=["product", "status"], name="entitlement_product_idx"),
            models.Index(fields=["status", "ends_at"], name="entitlement_due_idx"),
        ]
        permissions = [("revoke_entitlement", _("Can revoke entitlements"))]

    def __str__(self) -> str:
        return f"E-{self.pk:08d}" if self.pk else "E-(new)"

    @property
    def reference(self) -> str:
        return str(self)

    def usable_at(self, when: Any) -> bool:
        """Whether the data may be delivered under it at `when`: active, begun and not run out."""
        return (
            self.status == self.Status.ACTIVE
            and self.starts_at <= when
            and (self.ends_at is None or when < self.ends_at)
        )


class Download(models.Model):
    """One download of a dataset under an entitlement, through a signed link: who the link was made for, when,
    which file, and how many bytes went out (`completed_at` once the whole file has)."""

    entitlement = models.ForeignKey(
        Entitlement, on_delete=models.PROTECT, related_name="downloads", verbose_name=_("entitlement")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("link made for"),
    )
    dataset = models.ForeignKey(
        "listings.Dataset", on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("dataset")
    )
    file_name = models.CharField(_("file"), max_length=255)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    size = models.PositiveBigIntegerField(_("size in bytes"))
    bytes_sent = models.PositiveBigIntegerField(_("bytes sent"), default=0)
    ip = models.GenericIPAddressField(_("from address"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("download")
        verbose_name_plural = _("downloads")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["entitlement", "-started_at"], name="download_entitlement_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(bytes_sent__lte=F("size")), name="download_bytes_within_size"),
        ]

    def __str__(self) -> str:
        return f"{self.entitlement} · {self.file_name}"


class DataCredential(models.Model):
    """An API entitlement's own key to its data: the data gateway takes it as
    `Authorization: Data-Key dxd_<prefix>_<secret>` (it stops working when its maker leaves the buyer firm). Separate from the firm's management API keys (it opens this
    entitlement's data and nothing else), shown once and stored as its SHA-256, revocable; making a new one revokes
    the one before (at most one works at a time)."""

    entitlement = models.ForeignKey(
        Entitlement, on_delete=models.PROTECT, related_name="credentials", verbose_name=_("entitlement")
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("made by")
    )
    created_at = models.DateTimeField(_("made at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revoked by"),
    )
    # Recorded by the meter's checkpoints, not by each call.
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("data credential")
        verbose_name_plural = _("data credentials")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["entitlement"], condition=Q(revoked_at__isnull=True), name="data_credential_one_live"
            ),
        ]

    def __str__(self) -> str:
        return f"dxd_{self.prefix}_…"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None


class Usage(models.Model):
    """The calls made under an entitlement in one period (the data gateway's pages and the sandbox's queries):
    the included ones, then the plan's unit price, up to `call_limit` (what the usage budget held in escrow pays,
    fees included; empty: no limit). `calls` is the meter's checkpoint: calls are counted in the shared cache and
    written here in batches (settlements.services.metering), never a write per call. At the period's end the
    usage is charged from the budget (`charge`), once."""

    entitlement = models.ForeignKey(
        Entitlement, on_delete=models.PROTECT, related_name="usage", verbose_name=_("entitlement")
    )
    period_start = models.DateField(_("period from"))
    period_end = models.DateField(_("period to"), null=True, blank=True, help_text=_("Empty: the licence has no end."))
    calls_included = models.PositiveBigIntegerField(_("calls included"), null=True, blank=True)
    unit_price = models.DecimalField(
        _("price per call beyond those included"), max_digits=14, decimal_places=6, null=True, blank=True
    )
    call_limit = models.PositiveBigIntegerField(_("most calls"), null=True, blank=True, help_text=_("Empty: no limit."))
    calls = models.PositiveBigIntegerField(_("calls"), default=0)
    checkpointed_at = models.DateTimeField(_("counted at"), null=True, blank=True)
    charge = models.OneToOneField(
        Charge,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="usage",
        verbose_name=_("usage budget charged"),
    )
    charged = models.DecimalField(_("usage charged"), max_digits=18, decimal_places=2, null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("usage")
        verbose_name_plural = _("usage")
        ordering = ["entitlement", "-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["entitlement", "period_start"], name="usage_entitlement_period"),
            models.CheckConstraint(
                condition=Q(period_end__isnull=True) | Q(period_end__gte=F("period_start")), name="usage_period_order"
            ),
            models.CheckConstraint(
                condition=Q(call_limit__isnull=True) | Q(calls__lte=F("call_limit")), name="usage_within_limit"
            ),
        ]
        indexes = [models.Index(fields=["closed_at", "period_end"], name="usage_open_idx")]

    def __str__(self) -> str:
        return f"{self.entitlement} · {self.period_start}"

    @property
    def calls_billable(self) -> int:
        return max(0, self.calls - (self.calls_included or 0))


class SandboxQuery(models.Model):
    """One aggregate query run in the sandbox under an entitlement, as it was asked, with what it answered: how
    many rows went out and how many were suppressed (too few individuals), or why it was refused. Append-only."""

    class Outcome(models.TextChoices):
        ANSWERED = "answered", _("Answered")
        REFUSED = "refused", _("Refused")

    entitlement = models.ForeignKey(
        Entitlement, on_delete=models.PROTECT, related_name="queries", verbose_name=_("entitlement")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("asked by"),
    )
    credential = models.ForeignKey(
        DataCredential,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("through the credential"),
    )
    query = models.JSONField(_("query"))
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices)
    error_code = models.CharField(_("why refused"), max_length=40, blank=True)
    rows_out = models.PositiveIntegerField(_("rows answered"), default=0)
    rows_suppressed = models.PositiveIntegerField(_("rows suppressed"), default=0)
    duration_ms = models.PositiveIntegerField(_("time (ms)"), default=0)
    created_at = models.DateTimeField(_("asked at"), default=timezone.now)

    class Meta:
        verbose_name = _("sandbox query")
        verbose_name_plural = _("sandbox queries")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entitlement", "-created_at"], name="sandbox_query_entitlement_idx")]

    def __str__(self) -> str:
        return f"{self.entitlement} · {self.created_at:%Y-%m-%d %H:%M}"
