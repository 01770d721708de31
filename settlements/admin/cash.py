"""Money in and out: deposits (booked one by one, or from a bank statement CSV, with its report), and withdrawals
with their approvals (four eyes above SETTLEMENT_SECOND_APPROVAL_ABOVE), payment and rejection.

Every write calls settlements.services (deposits, withdrawals); a refusal is a form error or a message."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget, AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import ReadOnlyAdminMixin, reason_action, reason_form, report_each, short_datetime
from exchange.exceptions import ApplicationError
from exchange.models import MemberFirm
from exchange.money import CURRENCY_CHOICES
from exchange.types import staff_user

from ..models import BankStatement, Deposit, Withdrawal
from ..permissions import APPROVE_WITHDRAWALS
from ..services import deposits as deposit_services
from ..services import withdrawals as withdrawal_services
from ..services.deposits import STATEMENT_COLUMNS
from .shared import (
    ADMIN_CSS,
    CHANGE_FORM_TEMPLATE,
    CHANGE_LIST_TEMPLATE,
    CsvFileForm,
    changelist_tools,
    form_page,
    html_table,
    money,
    posted,
    reference_search,
    refusal_as_form_errors,
)

# --- Deposits ---------------------------------------------------------------------------------------------------


class DepositForm(forms.Form):
    """A credit on the exchange's bank account, booked to a firm's cash (settlements.services.deposits)."""

    firm = forms.ModelChoiceField(label=_("firm"), queryset=MemberFirm.objects.all())  # with the search below
    currency = forms.ChoiceField(label=_("currency"), choices=CURRENCY_CHOICES)
    amount = forms.DecimalField(label=_("amount"), min_value=Decimal("0.01"), max_digits=18, decimal_places=2)
    bank_reference = forms.CharField(
        label=_("bank reference"), max_length=64, help_text=_("The bank's own reference of the credit, unique.")
    )
    value_date = forms.DateField(label=_("value date"), widget=AdminDateWidget)

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The firms' search of their admin (the list of firms grows long); the widget needs the field's choices.
        firm = self.fields["firm"]
        firm.widget = AutocompleteSelect(Deposit._meta.get_field("firm"), admin_site)
        firm.widget.choices = firm.choices  # type: ignore[attr-defined]  # a ModelChoiceField's iterator


class BookedFromFilter(admin.SimpleListFilter):
    title = _("booked from")
    parameter_name = "from"
    HAND, STATEMENT = "hand", "statement"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(self.HAND, _("By hand")), (self.STATEMENT, _("A bank statement"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Deposit]) -> QuerySet[Deposit]:
        if self.value() == self.HAND:
            return queryset.filter(statement__isnull=True)
        if self.value() == self.STATEMENT:
            return queryset.filter(statement__isnull=False)
        return queryset


@admin.register(Deposit)
class DepositAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Deposits are booked here (the add page books one through deposit_book) and never changed: a wrong one is
    corrected by a reversal of its entry."""

    list_display = ["bank_reference", "firm", "amount_display", "value_date", "statement_link", "booked_by", "booked"]
    list_filter = ["currency", BookedFromFilter, ("value_date", admin.DateFieldListFilter)]
    list_select_related = ["firm", "booked_by", "statement"]
    autocomplete_fields = ["firm"]
    raw_id_fields = ["statement", "booked_by"]
    search_fields = ["bank_reference", "firm__legal_name_en", "firm__legal_name_zh", "firm__uscc", "firm__lei"]
    search_help_text = _("Bank reference, or the firm's name, USCC or LEI.")
    ordering = ["-booked_at", "-id"]
    show_full_result_count = False
    change_list_template = CHANGE_LIST_TEMPLATE
    fields = [
        "firm",
        "currency",
        "amount",
        "bank_reference",
        "value_date",
        "statement_link",
        "entry_link",
        "booked_by",
        "booked_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, deposit: Deposit) -> str:
        return money(deposit.amount, deposit.currency)

    @admin.display(description=_("booked at"), ordering="booked_at")
    def booked(self, deposit: Deposit) -> str:
        return short_datetime(deposit.booked_at)

    @admin.display(description=_("bank statement"))
    def statement_link(self, deposit: Deposit) -> str:
        if deposit.statement_id is None:
            return gettext("By hand")
        url = reverse("admin:settlements_bankstatement_change", args=[deposit.statement_id])
        return format_html('<a href="{}">{}</a>', url, deposit.statement)

    @admin.display(description=_("journal entry"))
    def entry_link(self, deposit: Deposit) -> str:
        url = reverse("admin:settlements_journalentry_change", args=[deposit.entry_id])
        return format_html('<a href="{}">#{}</a>', url, deposit.entry_id)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tools = []
        if self.has_add_permission(request):
            tools.append((reverse("admin:settlements_deposit_add"), gettext("Book a deposit"), True))
        if self.admin_site.is_registered(BankStatement) and request.user.has_perm("settlements.add_bankstatement"):
            tools.append((reverse("admin:settlements_bankstatement_add"), gettext("Import a bank statement"), True))
        return super().changelist_view(request, {**changelist_tools(*tools), **(extra_context or {})})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DepositForm(*posted(request), admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            try:
                deposit = deposit_services.deposit_book(**form.cleaned_data, actor=staff_user(request))
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Deposit %(reference)s booked: %(amount)s to %(firm)s.")
                    % {"reference": deposit.bank_reference, "amount": money(deposit.amount, deposit.currency),
                       "firm": deposit.firm},
                    messages.SUCCESS,
                )  # fmt: skip
                return HttpResponseRedirect(reverse("admin:settlements_deposit_change", args=[deposit.pk]))
        return form_page(
            self,
            request,
            form=form,
            title=_("Book a deposit"),
            intro=_(
                "Book a credit on the exchange's bank account to the firm's cash, as the bank's statement shows it. "
                "Its bank reference is unique: a credit is never booked twice."
            ),
            submit=_("Book"),
        )


# --- Bank statements ---------------------------------------------------------------------------------------------


@admin.register(BankStatement)
class BankStatementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Imported bank statements and their reports; the add page is the import (statement_import)."""

    list_display = ["file_name", "imported", "imported_by", "booked", "refused"]
    list_filter = [("imported_at", admin.DateFieldListFilter)]
    list_select_related = ["imported_by"]
    raw_id_fields = ["imported_by"]
    search_fields = ["file_name", "sha256", "deposits__bank_reference"]
    search_help_text = _("File name, its SHA-256, or the bank reference of a line it booked.")
    ordering = ["-imported_at", "-id"]
    show_full_result_count = False
    change_list_template = CHANGE_LIST_TEMPLATE
    fields = ["file_name", "sha256", "importer", "imported_at", "booked", "refused", "report_table"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> BankStatement | None:
        try:
            return self.get_queryset(request).select_related("imported_by").get(pk=int(object_id))
        except (ValueError, BankStatement.DoesNotExist):
            return None

    @admin.display(description=_("imported at"), ordering="imported_at")
    def imported(self, statement: BankStatement) -> str:
        return short_datetime(statement.imported_at)

    @admin.display(description=_("imported by"))
    def importer(self, statement: BankStatement) -> str:
        return str(statement.imported_by)

    @admin.display(description=_("report"))
    def report_table(self, statement: BankStatement) -> SafeString:
        booked = {d.pk: d for d in Deposit.objects.filter(statement=statement).select_related("firm").order_by("pk")}
        rows: list[tuple[Any, ...]] = []
        for line in statement.report or []:
            deposit = booked.get(line.get("deposit"))
            if line.get("status") == "booked" and deposit is not None:
                url = reverse("admin:settlements_deposit_change", args=[deposit.pk])
                rows.append(
                    (line.get("line"), line.get("bank_reference") or "—", gettext("Booked"), str(deposit.firm),
                     money(deposit.amount, deposit.currency), format_html('<a href="{}">#{}</a>', url, deposit.pk), "")
                )  # fmt: skip
            else:
                rows.append(
                    (line.get("line"), line.get("bank_reference") or "—",
                     format_html("<b>{}</b>", gettext("Refused")), "—", "—", "—", line.get("reason", ""))
                )  # fmt: skip
        return html_table(
            [gettext("Line"), gettext("Bank reference"), gettext("Outcome"), gettext("Firm"), gettext("Amount"),
             gettext("Deposit"), gettext("Reason")],
            rows,
        )  # fmt: skip

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tools = []
        if self.has_add_permission(request):
            tools.append((reverse("admin:settlements_bankstatement_add"), gettext("Import a bank statement"), True))
        return super().changelist_view(request, {**changelist_tools(*tools), **(extra_context or {})})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CsvFileForm(*posted(request))
        if request.method == "POST" and form.is_valid():
            try:
                statement = deposit_services.statement_import(
                    file_name=form.file_name, content=form.cleaned_data["file"], actor=staff_user(request)
                )
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Statement imported: %(booked)d lines booked, %(refused)d refused.")
                    % {"booked": statement.booked, "refused": statement.refused},
                    messages.SUCCESS if not statement.refused else messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:settlements_bankstatement_change", args=[statement.pk]))
        return form_page(
            self,
            request,
            form=form,
            title=_("Import a bank statement"),
            intro=_(
                "Each credit line is booked to the cash of the firm its payment reference names (the firm's USCC or "
                "LEI). A line whose bank reference was booked before, which names no verified firm, or whose values "
                "are malformed is refused, with its reason in the statement's report; the other lines are booked."
            ),
            submit=_("Import"),
            columns=STATEMENT_COLUMNS,
        )


# --- Withdrawals --------------------------------------------------------------------------------------------------


class PayForm(forms.Form):
    text_field = "bank_reference"  # what reason_action hands the service
    bank_reference = forms.CharField(
        label=_("Bank reference of the payment"),
        max_length=64,
        help_text=_("As the bank's confirmation of the transfer shows it."),
        strip=True,
    )


RejectForm = reason_form(label=_("Reasons"), help_text=_("The firm reads them."))


@admin.register(Withdrawal)
class WithdrawalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Firms request withdrawals (portal, API); clerks approve them (a second staff member too above the
    threshold, never the first approver), record the bank's payment or reject them (settlements.services.
    withdrawals)."""

    list_display = [
        "number",
        "firm",
        "amount_display",
        "status",
        "requested",
        "first_approval",
        "second_approval",
        "payment",
    ]
    list_display_links = ["number"]
    list_filter = ["status", "currency", ("requested_at", admin.DateFieldListFilter)]
    list_select_related = ["firm", "approved_by", "second_approved_by", "paid_by"]
    raw_id_fields = ["firm", "requested_by", "approved_by", "second_approved_by", "paid_by", "closed_by"]
    search_fields = ["firm__legal_name_en", "firm__legal_name_zh", "bank_reference"]
    search_help_text = _("Withdrawal number (W-000012), the firm's name, or the bank reference of the payment.")
    ordering = ["-requested_at", "-id"]
    show_full_result_count = False
    actions = ["approve", "approve_second", "pay", "reject"]
    change_form_template = CHANGE_FORM_TEMPLATE
    fieldsets = (
        (None, {"fields": ("number", "firm", "currency", "amount", "bank_account", "status", "requester",
                           "requested_at")}),
        (_("Approvals (four eyes)"), {"fields": ("second_needed", "first_approval", "second_approval")}),
        (_("Payment"), {"fields": ("payment", "bank_reference")}),
        (_("Closed"), {"fields": ("closer", "closed_at", "reason")}),
    )  # fmt: skip
    readonly_fields = [
        "number",
        "firm",
        "currency",
        "amount",
        "bank_account",
        "status",
        "requester",
        "requested_at",
        "second_needed",
        "first_approval",
        "second_approval",
        "payment",
        "bank_reference",
        "closer",
        "closed_at",
        "reason",
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_WITHDRAWALS)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Withdrawal], search_term: str
    ) -> tuple[QuerySet[Withdrawal], bool]:
        found = reference_search(queryset, search_term, "W")
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Withdrawal | None:
        queryset = self.get_queryset(request).select_related(
            "firm", "requested_by", "approved_by", "second_approved_by", "paid_by", "closed_by"
        )
        try:
            return queryset.get(pk=int(object_id))
        except (ValueError, Withdrawal.DoesNotExist):
            return None

    # -- columns --

    @admin.display(description=_("withdrawal"), ordering="pk")
    def number(self, withdrawal: Withdrawal) -> str:
        return f"W-{withdrawal.pk:06d}"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, withdrawal: Withdrawal) -> str:
        return money(withdrawal.amount, withdrawal.currency)

    @admin.display(description=_("requested at"), ordering="requested_at")
    def requested(self, withdrawal: Withdrawal) -> str:
        return short_datetime(withdrawal.requested_at)

    @admin.display(description=_("requested by"))
    def requester(self, withdrawal: Withdrawal) -> str:
        return str(withdrawal.requested_by)

    @admin.display(description=_("second approval needed"))
    def second_needed(self, withdrawal: Withdrawal) -> str:
        if withdrawal_services.second_approval_needed(withdrawal):
            return gettext("Yes: above the amount one clerk approves alone")
        return gettext("No")

    @admin.display(description=_("first approval"))
    def first_approval(self, withdrawal: Withdrawal) -> str:
        if withdrawal.approved_by_id is None:
            return "—"
        return gettext("%(who)s, %(when)s") % {
            "who": withdrawal.approved_by,
            "when": short_datetime(withdrawal.approved_at),
        }

    @admin.display(description=_("second approval"))
    def second_approval(self, withdrawal: Withdrawal) -> str:
        if withdrawal.second_approved_by_id is not None:
            return gettext("%(who)s, %(when)s") % {
                "who": withdrawal.second_approved_by,
                "when": short_datetime(withdrawal.second_approved_at),
            }
        if withdrawal.status == Withdrawal.Status.AWAITING_SECOND:
            return gettext("Waiting: anyone but %(first)s") % {"first": withdrawal.approved_by}
        if withdrawal.approved_by_id is not None:
            return gettext("Not needed")
        return "—"

    @admin.display(description=_("paid"))
    def payment(self, withdrawal: Withdrawal) -> str:
        if withdrawal.paid_by_id is None:
            return "—"
        return gettext("%(who)s, %(when)s, bank reference %(reference)s") % {
            "who": withdrawal.paid_by,
            "when": short_datetime(withdrawal.paid_at),
            "reference": withdrawal.bank_reference,
        }

    @admin.display(description=_("closed by"))
    def closer(self, withdrawal: Withdrawal) -> str:
        return str(withdrawal.closed_by or "—")

    # -- the change page's buttons and the actions --

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        withdrawal = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if withdrawal is not None:
            extra.update(
                review_buttons=self._buttons(request, withdrawal),
                action_url=reverse("admin:settlements_withdrawal_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _buttons(self, request: HttpRequest, withdrawal: Withdrawal) -> list[tuple[str, str]]:
        if not self.has_approve_permission(request):
            return []
        status, buttons = withdrawal.status, []
        if status == Withdrawal.Status.REQUESTED:
            buttons.append(("approve", gettext("Approve")))
        elif status == Withdrawal.Status.AWAITING_SECOND:
            buttons.append(("approve_second", gettext("Second approval")))
        elif status == Withdrawal.Status.APPROVED:
            buttons.append(("pay", gettext("Record the payment")))
        if Withdrawal.Status.REJECTED in Withdrawal.ALLOWED.get(status, set()):
            buttons.append(("reject", gettext("Reject")))
        return buttons

    def _selected(self, queryset: QuerySet[Withdrawal]) -> list[Withdrawal]:
        return list(queryset.select_related("firm", "approved_by").order_by("pk"))

    @admin.action(description=_("Approve"), permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> HttpResponse | None:
        return report_each(
            self,
            request,
            self._selected(queryset),
            lambda w: withdrawal_services.withdrawal_approve(withdrawal=w, actor=staff_user(request)),
            lambda n: ngettext("%(n)d withdrawal approved.", "%(n)d withdrawals approved.", n) % {"n": n},
        )

    @admin.action(description=_("Second approval (another staff member than the first)"), permissions=["approve"])
    def approve_second(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> HttpResponse | None:
        return report_each(
            self,
            request,
            self._selected(queryset),
            lambda w: withdrawal_services.withdrawal_approve_second(withdrawal=w, actor=staff_user(request)),
            lambda n: (
                ngettext("%(n)d withdrawal approved a second time.", "%(n)d withdrawals approved a second time.", n)
                % {"n": n}
            ),
        )

    _with_text = functools.partial(reason_action, permission="approve", target="withdrawal", selected=_selected)
    pay = _with_text(
        withdrawal_services.withdrawal_pay,
        description=_("Record the payment"),
        form_class=PayForm,
        reason_arg="bank_reference",
        title=_("Record the bank's payment"),
        intro=_(
            "Record each withdrawal as paid once the bank has made the transfer: the money leaves the firm's "
            "withdrawals account and the exchange's bank account."
        ),
        submit=_("Record as paid"),
        done=ngettext_lazy("%(n)d withdrawal paid.", "%(n)d withdrawals paid.", "n"),
    )
    reject = _with_text(
        withdrawal_services.withdrawal_reject,
        description=_("Reject"),
        form_class=RejectForm,
        title=_("Reject withdrawals"),
        intro=_("A rejected withdrawal's amount goes back to the firm's cash. Say why; the firm reads it."),
        submit=_("Reject"),
        done=ngettext_lazy("%(n)d withdrawal rejected.", "%(n)d withdrawals rejected.", "n"),
        danger=True,
    )
