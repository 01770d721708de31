"""Orders: the list the clerks search by reference or firm, each order's page with what was bought (its snapshot,
read as people read it), its charges and its timeline, and the staff's steps: refunds and dispute resolutions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from compliance.display import DECISION_LABELS, STATUS_LABELS, evidence_label
from exchange.admin_kit import ReadOnlyAdminMixin, ask_first, report_each, short_datetime
from exchange.types import staff_user
from listings.models import DeliveryMode, PricePlan

from ..models import Charge, Order, OrderEvent
from ..permissions import REFUND_ORDERS
from ..services import orders as order_services
from .shared import ADMIN_CSS, CHANGE_FORM_TEMPLATE, bps, html_table, money, reference_search

Status = Order.Status
# Orders staff may refund: released, delivered or disputed (Order.ALLOWED), until settled.
REFUNDABLE = frozenset(s for s, targets in Order.ALLOWED.items() if Status.REFUNDED in targets)
# The catalogue's "Created" is a date's label (创建时间); an order's first state is not.
ORDER_STATUS_LABELS = {
    **{status.value: status.label for status in Status},
    Status.CREATED: pgettext_lazy("order", "Created"),
}
EVENT_LABELS = {
    **ORDER_STATUS_LABELS,
    "placed": _("Placed"),
    "note": _("Note"),
    "case_changed": _("Compliance case changed"),
}


def _label(choices: type[Any], value: Any) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value or "—")


def _lines(pairs: list[tuple[Any, Any]]) -> SafeString:
    """Label: value lines, as a short definition list."""
    return format_html_join("", '<div class="listings-kv"><b>{}</b>: {}</div>', ((str(k), v) for k, v in pairs))


# --- Forms ----------------------------------------------------------------------------------------------------


class _AmountForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount to refund"),
        required=False,
        min_value=Decimal("0.01"),
        max_digits=18,
        decimal_places=2,
        help_text=_(
            "Leave it blank to refund everything the order still holds in escrow. An amount is what returns of the "
            "price (the rest goes to the provider, net of fees); a usage budget always returns whole."
        ),
    )
    reason = forms.CharField(
        label=_("Reasons"),
        help_text=_("Both firms read them."),
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        strip=True,
    )

    def __init__(self, *args: Any, orders: list[Order], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.orders = orders

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()  # type: ignore[assignment]  # returns cleaned_data; the stubs allow None
        if data.get("amount") is not None and len(self.orders) > 1:
            self.add_error(
                "amount", _("Give an amount only when refunding one order; leave it blank to refund each one whole.")
            )
        return data


class RefundForm(_AmountForm):
    pass


class ResolveForm(_AmountForm):
    RELEASE, REFUND = "release", "refund"

    outcome = forms.ChoiceField(
        label=_("Outcome"),
        choices=[
            (RELEASE, _("Release: the delivery counts as accepted and the provider is paid")),
            (REFUND, _("Refund the buyer: everything held, or the amount below")),
        ],
        widget=forms.RadioSelect,
    )
    field_order = ["outcome", "amount", "reason"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("outcome") == self.RELEASE and data.get("amount") is not None:
            self.add_error("amount", _("An amount goes with a refund only."))
        return data


# --- Inlines ---------------------------------------------------------------------------------------------------


class ChargeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Charge
    extra = 0
    can_delete = False
    fields = [
        "kind",
        "sequence",
        "period_start",
        "period_end",
        "price",
        "buyer_fee",
        "provider_fee",
        "status",
        "refunded",
        "provider_net",
        "fee_collected",
        "closed_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names
    verbose_name_plural = _("charges (money the order holds)")


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ["when", "what", "from_status", "to_status", "actor", "details"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names
    verbose_name_plural = _("timeline")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).select_related("actor")

    @admin.display(description=_("when"))
    def when(self, event: OrderEvent) -> str:
        return short_datetime(event.created_at)

    @admin.display(description=_("what"))
    def what(self, event: OrderEvent) -> str:
        return str(EVENT_LABELS.get(event.kind, event.kind))

    @admin.display(description=_("from"))
    def from_status(self, event: OrderEvent) -> str:
        return str(ORDER_STATUS_LABELS.get(event.old_status, event.old_status or "—"))

    @admin.display(description=_("to"))
    def to_status(self, event: OrderEvent) -> str:
        return str(ORDER_STATUS_LABELS.get(event.new_status, event.new_status or "—"))

    @admin.display(description=_("details"))
    def details(self, event: OrderEvent) -> str:
        if not event.data:
            return "—"
        return _lines([(key, value) for key, value in event.data.items()])


# --- Orders ---------------------------------------------------------------------------------------------------


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Orders are placed, delivered and accepted by the firms; staff read them here, refund them and resolve
    their disputes through the actions (settlements.services.orders)."""

    list_display = ["reference", "buyer_firm", "provider_firm", "product_title", "status", "total", "placed_at"]
    list_display_links = ["reference"]
    list_filter = ["status", "board", "currency"]
    list_select_related = ["buyer_firm", "provider_firm", "revision"]
    raw_id_fields = [
        "buyer_firm",
        "placed_by",
        "provider_firm",
        "board",
        "product",
        "revision",
        "plan",
        "assessment",
        "case",
        "access_request",
    ]
    search_fields = [
        "buyer_firm__legal_name_en",
        "buyer_firm__legal_name_zh",
        "provider_firm__legal_name_en",
        "provider_firm__legal_name_zh",
    ]
    search_help_text = _("Order reference (DX-00000012) or a buyer's or provider's name (English or Chinese).")
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    actions = ["refund", "resolve_dispute"]
    inlines = [ChargeInline, OrderEventInline]
    change_form_template = CHANGE_FORM_TEMPLATE
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "reference",
                    "status",
                    "buyer_firm",
                    "placed_by",
                    "provider_firm",
                    "board",
                    "product",
                    "bought",
                    "delivery",
                    "created_at",
                )
            },
        ),
        (_("Price and fees"), {"fields": ("amounts", "fee_schedule")}),
        (_("Licence"), {"fields": ("licence",)}),
        (_("Stated use and destination"), {"fields": ("intended_use", "destination")}),
        (_("Compliance"), {"fields": ("compliance_decision", "case", "assessment")}),
        (
            _("Dates"),
            {
                "fields": (
                    "released_at",
                    "delivered_at",
                    "acceptance_due_at",
                    "accepted_at",
                    "settled_at",
                    "closed_at",
                    "reason",
                )
            },
        ),
    )
    readonly_fields = [
        "reference",
        "status",
        "buyer_firm",
        "placed_by",
        "provider_firm",
        "board",
        "product",
        "bought",
        "delivery",
        "created_at",
        "amounts",
        "fee_schedule",
        "licence",
        "intended_use",
        "destination",
        "compliance_decision",
        "case",
        "assessment",
        "released_at",
        "delivered_at",
        "acceptance_due_at",
        "accepted_at",
        "settled_at",
        "closed_at",
        "reason",
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REFUND_ORDERS)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        found = reference_search(queryset, search_term, "DX")
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Order | None:
        # The page shows every party and record the order points at: fetched with it.
        queryset = self.get_queryset(request).select_related(
            "buyer_firm",
            "placed_by",
            "provider_firm",
            "board",
            "product__listed_revision",
            "revision",
            "case",
            "assessment",
        )
        try:
            return queryset.get(pk=int(object_id))
        except (ValueError, Order.DoesNotExist):
            return None

    # -- columns --

    @admin.display(description=_("reference"), ordering="pk")
    def reference(self, order: Order) -> str:
        return order.reference

    @admin.display(description=_("product"))
    def product_title(self, order: Order) -> str:
        return f"{order.revision.title} (r{order.revision.number})"

    @admin.display(description=_("total"))
    def total(self, order: Order) -> str:
        return money(order.total, order.currency)

    @admin.display(description=_("placed at"), ordering="created_at")
    def placed_at(self, order: Order) -> str:
        return short_datetime(order.created_at)

    # -- the snapshot, as people read it --

    @admin.display(description=_("what was bought"))
    def bought(self, order: Order) -> SafeString:
        snap = order.snapshot or {}
        revision, plan = snap.get("revision", {}), snap.get("plan", {})
        pairs: list[tuple[Any, Any]] = [
            (gettext("Product (English)"), f"{revision.get('title_en', '—')} (r{revision.get('number', '?')})"),
            (gettext("Product (Chinese)"), revision.get("title_zh") or "—"),
            (gettext("Plan (English)"), plan.get("name_en") or "—"),
            (gettext("Plan (Chinese)"), plan.get("name_zh") or "—"),
            (gettext("Kind"), _label(PricePlan.Kind, plan.get("kind"))),
        ]
        if plan.get("period"):
            pairs.append((gettext("Period"), _label(PricePlan.Period, plan["period"])))
        pairs.append((gettext("Plan's price"), money(_decimal(plan.get("amount")), plan.get("currency", ""))))
        if plan.get("included_calls"):
            pairs.append((gettext("Calls included"), plan["included_calls"]))
        if plan.get("unit_price"):
            pairs.append((gettext("Price per call"), money(_decimal(plan["unit_price"]), plan.get("currency", ""))))
        if plan.get("private"):
            pairs.append((gettext("Private offer"), gettext("Yes")))
        return _lines(pairs)

    @admin.display(description=_("delivery"))
    def delivery(self, order: Order) -> str:
        return _label(DeliveryMode, order.delivery_mode)

    @admin.display(description=_("amounts"))
    def amounts(self, order: Order) -> SafeString:
        currency = order.currency
        rows = [
            (gettext("Price"), money(order.price, currency)),
            (gettext("Buyer's fee"), money(order.buyer_fee, currency)),
            (gettext("Usage budget"), money(order.usage_budget, currency)),
            (gettext("Total paid into escrow"), format_html("<b>{}</b>", money(order.total, currency))),
            (gettext("Provider's fee"), money(order.provider_fee, currency)),
            (gettext("Provider receives"), money(order.price - order.provider_fee, currency)),
        ]
        return html_table([gettext("Amount"), gettext("Value")], rows)

    @admin.display(description=_("fee schedule applied"))
    def fee_schedule(self, order: Order) -> SafeString:
        fees = (order.snapshot or {}).get("fees", {})
        if not fees:
            return format_html("{}", "—")
        return _lines(
            [
                (gettext("In force from"), fees.get("effective_from", "—")),
                (gettext("Provider's rate"), bps(int(fees.get("provider_rate_bps", 0)))),
                (gettext("Buyer's rate"), bps(int(fees.get("buyer_rate_bps", 0)))),
                (gettext("Buyer's fixed fee"), money(_decimal(fees.get("buyer_fixed")), fees.get("currency", ""))),
            ]
        )

    @admin.display(description=_("licence"))
    def licence(self, order: Order) -> SafeString:
        licence = (order.snapshot or {}).get("licence", {})
        terms = licence.get("terms") or {}
        text = html_table(
            [gettext("English"), gettext("Chinese")],
            [(format_html('<div class="listings-long">{}</div>', licence.get("en") or "—"),
              format_html('<div class="listings-long">{}</div>', licence.get("zh") or "—"))],
        )  # fmt: skip
        if not terms:
            return text
        return format_html(
            "{}{}", text, _lines([(key.replace("_", " "), _term(value)) for key, value in terms.items()])
        )

    @admin.display(description=_("compliance decision"))
    def compliance_decision(self, order: Order) -> SafeString:
        decided = (order.snapshot or {}).get("compliance", {})
        if not decided:
            return format_html("{}", "—")
        decision = decided.get("decision", "")
        summary = _lines(
            [
                (gettext("At the order"), str(STATUS_LABELS.get(decided.get("status"), decided.get("status", "—")))),
                (gettext("Decision"), str(DECISION_LABELS.get(decision, decision or "—"))),
                (gettext("Rules"), ", ".join(decided.get("rules") or []) or "—"),
                (gettext("Rules version"), decided.get("rule_version") or "—"),
                (
                    gettext("Missing then"),
                    "; ".join(evidence_label(m.get("kind", "")) for m in decided.get("missing") or []) or "—",
                ),
            ]
        )
        reasons = html_table(
            [gettext("Rule"), gettext("English"), gettext("Chinese"), gettext("Source")],
            [
                (format_html("<code>{}</code>", r.get("rule", "")), r.get("text_en", ""), r.get("text_zh", ""),
                 r.get("source", ""))
                for r in decided.get("reasons") or []
            ],
            css="compliance-reasons",
        )  # fmt: skip
        return format_html("{}{}", summary, reasons)

    # -- the change page's buttons and the actions --

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        order = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if order is not None:
            extra.update(
                review_buttons=self._buttons(request, order),
                action_url=reverse("admin:settlements_order_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _buttons(self, request: HttpRequest, order: Order) -> list[tuple[str, str]]:
        if not self.has_refund_permission(request):
            return []
        buttons = []
        if order.status == Status.DISPUTED:
            buttons.append(("resolve_dispute", gettext("Resolve the dispute")))
        if order.status in REFUNDABLE:
            buttons.append(("refund", gettext("Refund")))
        return buttons

    def _selected(self, queryset: QuerySet[Order]) -> list[Order]:
        return list(queryset.select_related("buyer_firm", "provider_firm").order_by("pk"))

    @admin.action(description=_("Refund (all or part of what is held)"), permissions=["refund"])
    def refund(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        orders = self._selected(queryset)
        form = RefundForm(request.POST if "apply" in request.POST else None, orders=orders)
        page = ask_first(
            self,
            request,
            orders,
            form=form,
            title=_("Refund orders"),
            intro=_(
                "The refund returns money held in escrow to the buyer's cash: everything the order holds, or the "
                "amount you give, the rest then going to the provider and the fees in proportion. The order is "
                "closed as refunded. Both firms read your reasons."
            ),
            submit=_("Refund"),
            danger=True,
        )
        if page is not None:
            return page
        amount, reason = form.cleaned_data["amount"], form.cleaned_data["reason"]
        return report_each(
            self,
            request,
            orders,
            lambda order: order_services.order_refund(
                order=order, actor=staff_user(request), reason=reason, amount=amount
            ),
            lambda n: ngettext("%(n)d order refunded.", "%(n)d orders refunded.", n) % {"n": n},
        )

    @admin.action(description=_("Resolve the dispute (release or refund)"), permissions=["refund"])
    def resolve_dispute(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        orders = self._selected(queryset)
        form = ResolveForm(request.POST if "apply" in request.POST else None, orders=orders)
        page = ask_first(
            self,
            request,
            orders,
            form=form,
            title=_("Resolve disputes"),
            intro=_(
                "Release: the delivery counts as accepted and the order is settled to the provider. Refund: the "
                "buyer gets back everything held, or the amount you give. Both firms read your reasons."
            ),
            submit=_("Resolve"),
        )
        if page is not None:
            return page
        data = form.cleaned_data
        return report_each(
            self,
            request,
            orders,
            lambda order: order_services.order_resolve_dispute(
                order=order,
                actor=staff_user(request),
                outcome=data["outcome"],
                reason=data["reason"],
                amount=data["amount"],
            ),  # fmt: skip
            lambda n: ngettext("%(n)d dispute resolved.", "%(n)d disputes resolved.", n) % {"n": n},
        )


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def _term(value: Any) -> str:
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return "—" if value in (None, "") else str(value)
