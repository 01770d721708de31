"""The ledger, read-only: journal entries with their postings, the accounts with their balances, and the trial
balance page with the ledger's invariants (settlements.selectors). Nothing here writes: the ledger is written by
the services only, and corrected by reversals."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import ReadOnlyAdminMixin, short_datetime
from exchange.admin_site import AdminPage, ExchangeAdminSite
from exchange.money import CURRENCIES, CURRENCY_CHOICES, quantize

from ..models import Account, JournalEntry, Posting
from ..selectors import ZERO, TrialBalanceRow, ledger_problems, ledger_reconcile, money_sum, trial_balance
from .shared import ADMIN_CSS, CHANGE_LIST_TEMPLATE, changelist_tools, html_table, money

VIEW_LEDGER = "settlements.view_journalentry"
RECENT_POSTINGS = 20  # an account's page shows its latest lines; the journal, filtered by it, has them all


# The models call both kinds "kind", a word the catalogue already gives a price plan's meaning (计费方式).
ENTRY_KIND = pgettext_lazy("journal entry", "kind")
ACCOUNT_KIND = pgettext_lazy("account", "kind")


def _titled(title: Any) -> type[admin.ChoicesFieldListFilter]:
    """The choices filter of a field, under another title than the field's verbose name."""

    class Titled(admin.ChoicesFieldListFilter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.title = title

    return Titled


def _order_reference(order_id: int | None) -> str:
    return f"DX-{order_id:08d}" if order_id else "—"


def _kind_label(kind: str) -> str:
    try:
        return str(Account.Kind(kind).label)
    except ValueError:
        return kind


def _account_link(account: Account) -> SafeString:
    url = reverse("admin:settlements_account_change", args=[account.pk])
    return format_html('<a href="{}">{}</a>', url, account)


# --- Journal entries -------------------------------------------------------------------------------------------------


class CurrencyFilter(admin.SimpleListFilter):
    title = _("currency")
    parameter_name = "currency"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(CURRENCY_CHOICES)

    def queryset(self, request: HttpRequest, queryset: QuerySet[JournalEntry]) -> QuerySet[JournalEntry]:
        if self.value() is None:
            return queryset
        return queryset.filter(Exists(Posting.objects.filter(entry=OuterRef("pk"), currency=self.value())))


class AccountFilter(admin.SimpleListFilter):
    """The entries that post to one account: reached from the account's page, shown only while it applies."""

    title = _("account")
    parameter_name = "account"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        value = request.GET.get(self.parameter_name, "")
        if not re.fullmatch(r"[0-9]{1,18}", value):
            return []
        account = Account.objects.select_related("firm").filter(pk=int(value)).first()
        return [(value, str(account))] if account is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[JournalEntry]) -> QuerySet[JournalEntry]:
        value = self.value()
        if value is None:
            return queryset
        if not re.fullmatch(r"[0-9]{1,18}", value):
            return queryset.none()
        return queryset.filter(Exists(Posting.objects.filter(entry=OuterRef("pk"), account_id=int(value))))


class PostingInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Posting
    extra = 0
    can_delete = False
    fields = ["account_link", "debit", "credit", "currency"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names
    verbose_name_plural = _("postings")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Posting]:
        return super().get_queryset(request).select_related("account__firm")

    @admin.display(description=_("account"))
    def account_link(self, posting: Posting) -> SafeString:
        return _account_link(posting.account)

    @admin.display(description=_("debit"))
    def debit(self, posting: Posting) -> str:
        return f"{posting.amount:,f}" if posting.amount > 0 else ""

    @admin.display(description=_("credit"))
    def credit(self, posting: Posting) -> str:
        return f"{-posting.amount:,f}" if posting.amount < 0 else ""


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every movement of money, as posted: never changed (corrections are reversals)."""

    list_display = ["id", "posted", "entry_kind", "reference", "amount", "order", "memo", "actor"]
    list_filter = [
        ("kind", _titled(ENTRY_KIND)),
        CurrencyFilter,
        AccountFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["actor", "charge"]
    raw_id_fields = ["charge", "reverses", "actor"]
    search_fields = ["=id", "reference", "memo"]
    search_help_text = _("Entry number, reference (e.g. charge:17, bank:REF) or memo.")
    ordering = ["-id"]
    show_full_result_count = False
    date_hierarchy = "created_at"
    inlines = [PostingInline]
    change_list_template = CHANGE_LIST_TEMPLATE
    fields = [
        "entry_kind",
        "reference",
        "memo",
        "amount",
        "order",
        "charge",
        "reverses",
        "reversal",
        "actor",
        "created_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[JournalEntry]:
        postings = Posting.objects.filter(entry=OuterRef("pk"))
        # Each entry's debits (equal to its credits) and its currency: subqueries, so the list is one query.
        debits = postings.filter(amount__gt=0).values("entry").annotate(total=money_sum("amount")).values("total")
        return (
            super()
            .get_queryset(request)
            .annotate(debit_total=Subquery(debits), entry_currency=Subquery(postings.values("currency")[:1]))
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> JournalEntry | None:
        try:
            return (
                self.get_queryset(request).select_related("actor", "charge__order", "reverses").get(pk=int(object_id))
            )
        except (ValueError, JournalEntry.DoesNotExist):
            return None

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tools = changelist_tools((reverse("admin:settlements_trial_balance"), gettext("Trial balance"), False))
        return super().changelist_view(request, {**tools, **(extra_context or {})})

    @admin.display(description=_("posted at"), ordering="created_at")
    def posted(self, entry: JournalEntry) -> str:
        return short_datetime(entry.created_at)

    @admin.display(description=ENTRY_KIND, ordering="kind")
    def entry_kind(self, entry: JournalEntry) -> str:
        return entry.get_kind_display()

    @admin.display(description=_("amount"))
    def amount(self, entry: JournalEntry) -> str:
        total, currency = getattr(entry, "debit_total", None), getattr(entry, "entry_currency", "") or ""
        if total is not None and currency in CURRENCIES:
            total = quantize(total, currency)  # SQLite sums decimals as floats: back to the minor unit
        return money(total, currency)

    @admin.display(description=_("order"))
    def order(self, entry: JournalEntry) -> str:
        if entry.charge_id is None or entry.charge is None:
            return "—"
        url = reverse("admin:settlements_order_change", args=[entry.charge.order_id])
        return format_html('<a href="{}">{}</a>', url, _order_reference(entry.charge.order_id))

    @admin.display(description=_("reversed by"))
    def reversal(self, entry: JournalEntry) -> str:
        reversal = JournalEntry.objects.filter(reverses=entry).only("pk").first()
        if reversal is None:
            return "—"
        url = reverse("admin:settlements_journalentry_change", args=[reversal.pk])
        return format_html('<a href="{}">#{}</a>', url, reversal.pk)


# --- Accounts -----------------------------------------------------------------------------------------------------


class OwnerFilter(admin.SimpleListFilter):
    title = _("owner")
    parameter_name = "owner"
    MEMBERS, EXCHANGE = "members", "exchange"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(self.MEMBERS, _("Member firms")), (self.EXCHANGE, _("The exchange"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        if self.value() == self.MEMBERS:
            return queryset.filter(firm__isnull=False)
        if self.value() == self.EXCHANGE:
            return queryset.filter(firm__isnull=True)
        return queryset


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Accounts per firm and currency (cash, escrow, payable, withdrawals) and the exchange's own; the balance is
    on the account's normal side, cached by the posting service and reconciled nightly (the trial balance page
    shows any difference)."""

    list_display = ["owner", "account_kind", "currency", "balance_display", "opened"]
    list_filter = [OwnerFilter, ("kind", _titled(ACCOUNT_KIND)), "currency"]
    list_select_related = ["firm"]
    raw_id_fields = ["firm"]
    search_fields = ["firm__legal_name_en", "firm__legal_name_zh", "firm__uscc", "firm__lei"]
    search_help_text = _("The firm's name, USCC or LEI.")
    ordering = ["firm__legal_name_en", "currency", "kind"]
    show_full_result_count = False
    change_list_template = CHANGE_LIST_TEMPLATE
    fields = ["owner", "account_kind", "currency", "balance_display", "created_at", "entries", "recent_postings"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Account | None:
        try:
            return self.get_queryset(request).select_related("firm").get(pk=int(object_id))
        except (ValueError, Account.DoesNotExist):
            return None

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tools = []
        if request.user.has_perm(VIEW_LEDGER):
            tools.append((reverse("admin:settlements_trial_balance"), gettext("Trial balance"), False))
        return super().changelist_view(request, {**changelist_tools(*tools), **(extra_context or {})})

    @admin.display(description=_("owner"), ordering="firm__legal_name_en")
    def owner(self, account: Account) -> str:
        return str(account.firm) if account.firm_id else gettext("The exchange")

    @admin.display(description=ACCOUNT_KIND, ordering="kind")
    def account_kind(self, account: Account) -> str:
        return account.get_kind_display()

    @admin.display(description=_("balance"), ordering="balance")
    def balance_display(self, account: Account) -> str:
        return money(account.balance, account.currency)

    @admin.display(description=_("opened at"), ordering="created_at")
    def opened(self, account: Account) -> str:
        return short_datetime(account.created_at)

    @admin.display(description=_("journal entries"))
    def entries(self, account: Account) -> SafeString:
        url = reverse("admin:settlements_journalentry_changelist") + f"?account={account.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("Every journal entry on this account"))

    @admin.display(description=_("latest postings"))
    def recent_postings(self, account: Account) -> SafeString:
        postings = (
            Posting.objects.filter(account=account).select_related("entry__charge").order_by("-id")[:RECENT_POSTINGS]
        )
        rows = []
        for posting in postings:
            entry = posting.entry
            url = reverse("admin:settlements_journalentry_change", args=[entry.pk])
            rows.append(
                (
                    format_html('<a href="{}">#{}</a>', url, entry.pk),
                    short_datetime(entry.created_at),
                    entry.get_kind_display(),
                    _order_reference(entry.charge.order_id) if entry.charge else "—",
                    f"{posting.amount:,f}" if posting.amount > 0 else "",
                    f"{-posting.amount:,f}" if posting.amount < 0 else "",
                )
            )
        if not rows:
            return format_html("{}", gettext("No postings yet."))
        return html_table(
            [gettext("Entry"), gettext("Posted at"), gettext("Kind"), gettext("Order"), gettext("Debit"),
             gettext("Credit")],
            rows,
        )  # fmt: skip


# --- The trial balance ------------------------------------------------------------------------------------------------


def trial_balance_view(request: HttpRequest) -> HttpResponse:
    """Debits and credits per currency and kind of account, the ledger's invariants, and the cached balances
    against their postings (settlements.selectors: aggregate queries, whatever the ledger's size)."""
    per_currency: dict[str, list[TrialBalanceRow]] = defaultdict(list)
    for row in trial_balance():
        per_currency[row.currency].append(row)
    currencies = []
    for currency, rows in sorted(per_currency.items()):
        # Back to the minor unit (SQLite sums decimals as floats), then shown as people read amounts.
        def shown(value: Decimal, currency: str = currency) -> str:
            return f"{quantize(value, currency):,f}" if currency in CURRENCIES else str(value)

        debit = sum((quantize(r.debit, currency) for r in rows), ZERO)
        credit = sum((quantize(r.credit, currency) for r in rows), ZERO)
        currencies.append(
            {
                "currency": currency,
                "rows": [
                    {"kind": _kind_label(r.kind), "debit": shown(r.debit), "credit": shown(r.credit),
                     "net": shown(r.debit - r.credit)}
                    for r in rows
                ],
                "debit": debit,
                "credit": credit,
                "debit_shown": shown(debit),
                "credit_shown": shown(credit),
                "balanced": debit == credit,
            }
        )  # fmt: skip
    differences = ledger_reconcile()
    accounts = Account.objects.select_related("firm").in_bulk([pk for pk, _cached, _computed in differences])
    site = admin.site
    context = {
        **site.each_context(request),
        "title": gettext("Trial balance"),
        "as_of": timezone.localtime(),
        "currencies": currencies,
        "problems": ledger_problems(),
        "differences": [
            {"account": accounts.get(pk), "cached": cached, "computed": computed, "difference": cached - computed}
            for pk, cached, computed in differences
        ],
        "app_label": "settlements",
        "journal_url": reverse("admin:settlements_journalentry_changelist"),
        "accounts_url": reverse("admin:settlements_account_changelist"),
    }
    return TemplateResponse(request, "admin/settlements/trial_balance.html", context)


_site = admin.site
assert isinstance(_site, ExchangeAdminSite), "the exchange's admin site (exchange.apps) lists the admin's own pages"
_site.register_page(
    AdminPage(
        app_label="settlements",
        slug="trial-balance",
        title=_("Trial balance"),
        view=trial_balance_view,
        permission=VIEW_LEDGER,
    )
)
