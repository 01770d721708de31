"""Portal pages of trading: the buy flow, the buyer's orders and access requests, the provider's sales and
incoming requests, the firm's balances with their ledger lines, deposit instructions and withdrawals.

Views stay thin: forms check the shape of the input, selectors decide what the firm sees (another firm's order,
request or withdrawal is a 404), services do every write and say no with an ApplicationError, which the page
shows as a form error, a message or a refusal with what to do next, never a server error. A refusal of who may
act (NotAllowed) is the site's 403 page, saying who may. Only members of a firm trade here; anyone else (exchange
staff included: they work in the admin) gets the 403 page.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_countries import countries

from compliance import display
from compliance.selectors import HELD, PROHIBITED, trade_precheck
from exchange.exceptions import ApplicationError, NotAllowed
from exchange.idempotency import run_once
from exchange.models import MemberFirm, Membership
from exchange.money import CURRENCIES
from exchange.selectors import user_membership
from exchange.types import AuthenticatedHttpRequest
from listings.models import DataProduct, DeliveryMode, PricePlan, Revision, bilingual
from listings.selectors import plans_visible_q, product_get_for_user

from . import selectors
from .forms import (
    AcceptForm,
    AccessRequestFilterForm,
    AccessRequestForm,
    ApproveForm,
    CancelForm,
    ConfirmForm,
    DeclineForm,
    DeliveryForm,
    DisputeForm,
    EntitlementFilterForm,
    OrderFilterForm,
    OrderForm,
    StatementFilterForm,
    WithdrawalForm,
    add_field_errors,
    add_refusal,
)
from .models import AccessRequest, Charge, Entitlement, Order, OrderEvent, Posting, Withdrawal
from .services import access, credentials, downloads, metering, withdrawals
from .services.orders import entitlement_stop as stop_subscription
from .services.orders import (
    may_act_as_buyer,
    may_act_as_provider,
    order_accept,
    order_cancel,
    order_confirm_delivery,
    order_dispute,
    order_place,
)

ORDERS_PER_PAGE = 25
LINES_PER_PAGE = 50
# One-time tokens of the review page a session keeps (the newest): enough for a few tabs reviewing at once.
TOKENS_KEPT = 20
SESSION_TOKENS = "settlements_order_tokens"
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


# --- Who is asking -------------------------------------------------------------------------------------------------


def _membership(request: AuthenticatedHttpRequest) -> Membership:
    """The member's membership; anyone of no firm (exchange staff included) gets the 403 page saying who may."""
    membership = user_membership(request.user)
    if membership is None:
        raise PermissionDenied(_("Only members of a firm trade on the exchange; exchange staff work in the admin."))
    return membership


def _refuse(exc: NotAllowed) -> PermissionDenied:
    return PermissionDenied(exc.message)


def _see_other(url: str) -> HttpResponseRedirect:
    # 303: the browser follows with a GET, so that reloading the next page never repeats the POST.
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _page(request: HttpRequest, queryset: Any, per_page: int) -> tuple[Page, str]:
    """A page of the list (junk -> page 1, past the end -> the last), and the query string of its filters."""
    page = Paginator(queryset, per_page).get_page(request.GET.get("page"))
    query: QueryDict = request.GET.copy()
    query.pop("page", None)
    return page, query.urlencode()


# --- Display helpers ------------------------------------------------------------------------------------------------


def firm_name(firm: MemberFirm) -> str:
    return bilingual(firm.legal_name_en, firm.legal_name_zh)


def _is_zh() -> bool:
    return (get_language() or "").startswith("zh")


def _country(code: str) -> str:
    return str(countries.name(code)) or code if code else ""


def _delivery_label(mode: str) -> str:
    return str(dict(DeliveryMode.choices).get(mode, mode))


def licence_terms(terms: dict[str, Any]) -> dict[str, Any]:
    territories = terms.get("territories", []) or []
    return {
        "purposes": terms.get("purposes", []) or [],
        "worldwide": "worldwide" in territories,
        "territories": [_country(t) for t in territories if t != "worldwide"],
        "duration_months": terms.get("duration_months"),
        "onward_transfer": bool(terms.get("onward_transfer")),
        "resale": bool(terms.get("resale")),
    }


def _reasons(reasons: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The engine's reasons in the reader's language."""
    zh = _is_zh()
    return [
        {
            "rule": str(r.get("rule", "")),
            "text": str((r.get("text_zh") if zh else None) or r.get("text_en", "")),
            "source": str(r.get("source", "")),
        }
        for r in reasons
    ]


@dataclass
class Bought:
    """What an order's snapshot says was bought, as the reader reads it."""

    title: str
    revision: int
    plan: str
    plan_kind: str
    period: str
    currency: str
    amount: str
    included_calls: Any
    unit_price: Any
    licence: str
    terms: dict[str, Any]
    intended_use: str
    destination: str
    compliance: dict[str, Any]


def bought(order: Order) -> Bought:
    snap = order.snapshot or {}
    revision, plan = snap.get("revision", {}), snap.get("plan", {})
    licence, stated, gate = snap.get("licence", {}), snap.get("stated", {}), snap.get("compliance", {})
    kinds, periods = dict(PricePlan.Kind.choices), dict(PricePlan.Period.choices)
    return Bought(
        title=bilingual(revision.get("title_en", ""), revision.get("title_zh", "")),
        revision=revision.get("number", 0),
        plan=bilingual(plan.get("name_en", ""), plan.get("name_zh", "")),
        plan_kind=str(kinds.get(plan.get("kind", ""), plan.get("kind", ""))),
        period=str(periods.get(plan.get("period", ""), "")),
        currency=plan.get("currency", order.currency),
        amount=plan.get("amount", ""),
        included_calls=plan.get("included_calls"),
        unit_price=plan.get("unit_price"),
        licence=bilingual(licence.get("en", ""), licence.get("zh", "")),
        terms=licence_terms(licence.get("terms", {}) or {}),
        intended_use=stated.get("intended_use", order.intended_use),
        destination=_country(stated.get("destination", "")),
        compliance={
            "status": gate.get("status", ""),
            "status_label": str(display.STATUS_LABELS.get(gate.get("status", ""), gate.get("status", ""))),
            "decision_label": display.decision_label(gate.get("decision", "")),
            "rules": gate.get("rules", []),
            "reasons": _reasons(gate.get("reasons", [])),
            "missing": display.missing_labels(gate.get("missing", [])),
        },
    )


def _order_title(order: Order) -> str:
    revision = (order.snapshot or {}).get("revision", {})
    return bilingual(revision.get("title_en", ""), revision.get("title_zh", ""))


# --- The buy flow ---------------------------------------------------------------------------------------------------


@dataclass
class Buy:
    """The product and plan being bought, and by whom."""

    membership: Membership
    product: DataProduct
    revision: Revision
    plan: PricePlan
    approved: AccessRequest | None

    @property
    def firm(self) -> MemberFirm:
        return self.membership.firm

    def form(self, data: Any = None, form_class: type[OrderForm] = OrderForm, **kwargs: Any) -> Any:
        return form_class(
            data,
            delivery_modes=list(self.revision.delivery_modes),
            metered=self.plan.kind == PricePlan.Kind.METERED,
            approved_use=self.approved.intended_use if self.approved else "",
            **kwargs,
        )


@dataclass
class Refused:
    """What stops an order before any form, on the product it is about."""

    product: DataProduct
    exc: ApplicationError


def _buy(request: AuthenticatedHttpRequest, pk: int, plan_pk: int) -> Buy | Refused:
    """The product and plan on the buyer's screen, or the refusal that stops the order before any form: the checks
    of settlements.selectors.order_terms, run once with a neutral stated use (read-only) so that the page says
    now, in the same words as the order would, what stands in the way (own product, not tradable, an access
    request to file, a currency not held, a retired plan, a suspended product...)."""
    membership = _membership(request)
    try:
        product = product_get_for_user(user=request.user, pk=pk)  # 404 for what the firm may not see
    except Http404:
        # A product suspended on a board the firm sees was on its screen: order_terms says so (else a 404 again).
        try:
            selectors.order_terms(user=request.user, product_id=pk, plan_id=plan_pk, delivery_mode="")
        except NotAllowed as exc:
            raise _refuse(exc) from None
        except ApplicationError as exc:
            return Refused(DataProduct.objects.select_related("listed_revision").get(pk=pk), exc)
        raise
    revision = product.listed_revision
    plan = PricePlan.objects.filter(pk=plan_pk, product=product).filter(plans_visible_q(membership.firm_id)).first()
    try:
        if revision is None:
            raise ApplicationError(_("Only a listed product can be traded."), code="not_listed", status_code=409)
        selectors.order_terms(
            user=request.user,
            product_id=product.pk,
            plan_id=plan_pk,
            delivery_mode=revision.delivery_modes[0] if revision.delivery_modes else "",
            intended_use="-",
            usage_budget=Decimal("0.01") if plan is not None and plan.kind == PricePlan.Kind.METERED else None,
        )
    except NotAllowed as exc:
        raise _refuse(exc) from None
    except ApplicationError as exc:
        if exc.code not in ("validation_error", "delivery_not_offered") or plan is None or revision is None:
            return Refused(product, exc)
    if plan is None or revision is None:
        raise Http404
    approved = (
        selectors.access_request_usable(buyer_firm=membership.firm, product=product, revision_number=revision.number)
        if revision.requires_approval
        else None
    )
    return Buy(membership=membership, product=product, revision=revision, plan=plan, approved=approved)


def _refusal(exc: ApplicationError) -> dict[str, Any]:
    details = exc.details or {}
    return {
        "code": exc.code,
        "message": exc.message,
        # What the details say in words (e.g. "The board does not settle in this plan's currency."), for the
        # refusals whose message only says "see details".
        "details": [
            message
            for name, messages in details.items()
            if name not in ("reasons", "missing", "rules") and isinstance(messages, list)
            for message in messages
            if isinstance(message, str)
        ],
        "reasons": _reasons(details.get("reasons", [])) if exc.code == "prohibited" else [],
        "missing": display.missing_labels(details.get("missing", [])) if exc.code == "prohibited" else [],
    }


def _refused_page(request: HttpRequest, product: DataProduct, exc: ApplicationError) -> HttpResponse:
    return render(
        request,
        "settlements/buy_refused.html",
        {"product": product, "title": _product_title(product), "refusal": _refusal(exc)},
        status=exc.status_code,
    )


def _product_title(product: DataProduct) -> str:
    revision = product.listed_revision
    return revision.title if revision is not None else str(product)


def _form_page(
    request: HttpRequest, buy: Buy, form: OrderForm, *, refusal: ApplicationError | None = None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "settlements/buy_form.html",
        {
            **_buy_context(buy),
            "form": form,
            "refusal": _refusal(refusal) if refusal else None,
        },
        status=refusal.status_code if refusal else status,
    )


def _buy_context(buy: Buy) -> dict[str, Any]:
    plan = buy.plan
    return {
        "product": buy.product,
        "revision": buy.revision,
        "title": buy.revision.title,
        "plan": plan,
        "plan_unit_price": _unit_price(plan.unit_price),
        "firm": buy.firm,
        "approved": buy.approved,
        "cross_border": buy.product.board.is_cross_border,
        "destination": buy.firm.country.name,
        "metered": plan.kind == PricePlan.Kind.METERED,
    }


def _unit_price(value: Any) -> str:
    """A metered unit price without its trailing zeros (0.050000 -> 0.05)."""
    if value is None:
        return ""
    whole, _dot, fraction = format(value.normalize(), "f").partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _fingerprint(buy: Buy, values: dict[str, Any], terms: selectors.OrderTerms) -> str:
    """What a confirmation must carry to be the order its review showed: the same fields, and the same amounts (a
    fee schedule that came into force meanwhile sends the buyer back to the review)."""
    body = {
        "amounts": [str(terms.price), str(terms.buyer_fee), str(terms.usage_budget), terms.currency],
        "product": buy.product.pk,
        "plan": buy.plan.pk,
        "delivery_mode": values["delivery_mode"],
        "intended_use": values["intended_use"].replace("\r\n", "\n").strip(),
        "usage_budget": str(values["usage_budget"]) if values["usage_budget"] is not None else "",
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _issue_token(request: HttpRequest, buy: Buy, values: dict[str, Any], terms: selectors.OrderTerms) -> str:
    tokens: dict[str, Any] = request.session.get(SESSION_TOKENS, {})
    token = secrets.token_urlsafe(24)
    tokens[token] = {"fingerprint": _fingerprint(buy, values, terms), "order": None}
    while len(tokens) > TOKENS_KEPT:
        tokens.pop(next(iter(tokens)))
    request.session[SESSION_TOKENS] = tokens
    return token


CHARGE_LABELS: dict[str, Any] = {
    Charge.Kind.PURCHASE: gettext_lazy("Price"),
    Charge.Kind.PERIOD: gettext_lazy("First period"),
    Charge.Kind.USAGE_BUDGET: gettext_lazy("Usage budget, held for usage"),
}


def _review_page(
    request: HttpRequest,
    buy: Buy,
    form: OrderForm,
    *,
    token: str | None = None,
    confirm: ConfirmForm | None = None,
    refusal: ApplicationError | None = None,
    status: int = 200,
) -> HttpResponse:
    """What the order would be, checked as the placement checks it: the verdict of the compliance gate for this
    buyer with its reasons, the amounts with the buyer's fees (the provider's fee is the provider's business), the
    cash it would take, the licence and the stated use; and the confirmation with its one-time token."""
    values = form.order_values()
    try:
        terms = selectors.order_terms(user=request.user, product_id=buy.product.pk, plan_id=buy.plan.pk, **values)
        clearance = trade_precheck(product=terms.product, buyer_firm=buy.firm, delivery=terms.delivery_mode).for_buyer()
    except NotAllowed as exc:
        raise _refuse(exc) from None
    except ApplicationError as exc:
        if add_field_errors(form, exc):
            return _form_page(request, buy, form, status=400)
        return _form_page(request, buy, form, refusal=exc)
    verdict = display.verdict(clearance)
    available = selectors.cash_available(firm_id=buy.firm.pk, currency=terms.currency)
    shortfall = terms.total - available if terms.total > available else None
    if confirm is None:
        token = token or _issue_token(request, buy, values, terms)
        confirm = buy.form(
            initial={**{k: v for k, v in values.items() if v is not None}, "token": token}, form_class=ConfirmForm
        )
    charges = [
        {
            "label": CHARGE_LABELS.get(c.kind, c.kind),
            "period_start": c.period_start,
            "period_end": c.period_end,
            "price": c.fees.price,
            "buyer_fee": c.fees.buyer_fee,
            "total": c.total,
        }
        for c in terms.charges
    ]
    schedule = terms.schedule
    return render(
        request,
        "settlements/buy_review.html",
        {
            **_buy_context(buy),
            "form": form,
            "confirm": confirm,
            "terms": terms,
            "charges": charges,
            "buyer_rate_percent": Decimal(schedule.buyer_rate_bps) / 100,
            "buyer_fixed": schedule.buyer_fixed,
            "verdict": verdict,
            "reasons": _reasons(verdict.reasons),
            "prohibited": verdict.status == PROHIBITED,
            "held": verdict.status == HELD,
            "available": available,
            "after": available - terms.total,
            "shortfall": shortfall,
            "delivery_label": _delivery_label(terms.delivery_mode),
            "licence": buy.revision.licence,
            "licence_terms": licence_terms(buy.revision.licence_terms or {}),
            "intended_use": terms.intended_use,
            "refusal": _refusal(refusal) if refusal else None,
            "country": buy.firm.country.name,
        },
        status=refusal.status_code if refusal else status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def buy(request: AuthenticatedHttpRequest, pk: int, plan_pk: int) -> HttpResponse:
    """GET: the order form for one plan. POST: the review of the order (nothing is written but the session's
    one-time token for its confirmation); with `edit`, back to the form with what was typed."""
    found = _buy(request, pk, plan_pk)
    if isinstance(found, Refused):
        return _refused_page(request, found.product, found.exc)
    if request.method == "GET":
        return _form_page(request, found, found.form())
    if "edit" in request.POST:
        values = {k: request.POST.get(k, "") for k in ("delivery_mode", "intended_use", "usage_budget")}
        return _form_page(request, found, found.form(initial=values))
    form = found.form(request.POST)
    if not form.is_valid():
        return _form_page(request, found, form, status=400)
    return _review_page(request, found, form)


@never_cache
@login_required
@require_POST
def buy_confirm(request: AuthenticatedHttpRequest, pk: int, plan_pk: int) -> HttpResponse:
    """Place the order the review showed, once: the review's one-time token, held in the session, maps to the
    order it placed, so that a second submission of the same page (a double click, a reload, the back button)
    finds that order instead of placing another; two submissions at the same moment are told apart by the token's
    row in the database, written in the order's own transaction (exchange.idempotency.run_once), whichever web
    process each reaches."""
    membership = _membership(request)
    tokens: dict[str, Any] = request.session.get(SESSION_TOKENS, {})
    token = request.POST.get("token", "")
    if not TOKEN.fullmatch(token):
        token = ""  # not one this site issued (secrets.token_urlsafe makes them)
    # A page already confirmed: its order, before anything else is checked (the approval it used is spent now).
    placed = (tokens.get(token) or {}).get("order")
    if isinstance(placed, int):
        return _already_placed(request, placed)
    found = _buy(request, pk, plan_pk)
    if isinstance(found, Refused):
        return _refused_page(request, found.product, found.exc)
    buy_ = found
    confirm = buy_.form(request.POST, form_class=ConfirmForm)
    if not confirm.is_valid():
        if set(confirm.errors) - {"accept_licence", "token"}:
            return _form_page(request, buy_, buy_.form(request.POST), status=400)
        form = buy_.form(request.POST)
        form.is_valid()
        if token not in tokens:
            return _review_page(request, buy_, form, status=400)
        return _review_page(request, buy_, form, token=token, confirm=confirm, status=400)
    values = confirm.order_values()
    issued = tokens.get(token)
    try:
        terms = selectors.order_terms(user=request.user, product_id=buy_.product.pk, plan_id=buy_.plan.pk, **values)
    except NotAllowed as exc:
        raise _refuse(exc) from None
    except ApplicationError as exc:
        form = buy_.form(request.POST)
        form.is_valid()
        return _review_page(request, buy_, form, token=token, refusal=exc)
    fingerprint = _fingerprint(buy_, values, terms)
    if issued is None or issued.get("fingerprint") != fingerprint:
        # Not the order this session reviewed (an old page, another browser, a changed field or amount): review it
        # again.
        messages.warning(request, _("Check the order once more, then confirm it."))
        form = buy_.form(request.POST)
        form.is_valid()
        return _review_page(request, buy_, form, status=409)
    try:
        order_id, replayed = run_once(
            scope=f"firm:{membership.firm_id}",
            key=f"portal-order:{token}",
            fingerprint=fingerprint,
            work=lambda: order_place(actor=request.user, product_id=buy_.product.pk, plan_id=buy_.plan.pk, **values).pk,
        )
    except NotAllowed as exc:
        raise _refuse(exc) from None
    except ApplicationError as exc:
        # Refused: nothing was written (the token's row neither), so a corrected or later confirmation may use it.
        form = buy_.form(request.POST)
        form.is_valid()
        return _review_page(request, buy_, form, token=token, refusal=exc)
    if replayed:
        return _already_placed(request, order_id)
    order = Order.objects.get(pk=order_id)
    tokens[token] = {**issued, "order": order.pk}
    request.session[SESSION_TOKENS] = tokens
    if order.status == Order.Status.COMPLIANCE_HOLD:
        messages.success(
            request,
            _("Order %(reference)s is placed and held by compliance; its money waits in escrow.")
            % {"reference": order.reference},
        )
    else:
        messages.success(
            request, _("Order %(reference)s is placed and released for delivery.") % {"reference": order.reference}
        )
    return _see_other(reverse("portal:settlements:order", args=[order.pk]))


def _already_placed(request: HttpRequest, order_id: int) -> HttpResponseRedirect:
    messages.info(request, _("This order was placed already; here it is. No second order was placed."))
    return _see_other(reverse("portal:settlements:order", args=[order_id]))


# --- Orders: the buyer's and the provider's -------------------------------------------------------------------------


def _order_rows(page: Page, side: str) -> list[dict[str, Any]]:
    rows = []
    for order in page.object_list:
        counterparty = order.provider_firm if side == "buyer" else order.buyer_firm
        rows.append(
            {
                "order": order,
                "title": _order_title(order),
                "counterparty": firm_name(counterparty),
                "net": order.price - order.provider_fee,
            }
        )
    return rows


def _order_list(request: AuthenticatedHttpRequest, side: str) -> HttpResponse:
    membership = _membership(request)
    if side == "buyer":
        orders = selectors.order_list_bought(firm_id=membership.firm_id)
    else:
        orders = selectors.order_list_sold(firm_id=membership.firm_id)
    filters = OrderFilterForm(request.GET)
    if filters.is_valid() and filters.cleaned_data["status"]:
        orders = orders.filter(status=filters.cleaned_data["status"])
    page, query = _page(request, orders, ORDERS_PER_PAGE)
    return render(
        request,
        "settlements/orders.html",
        {"side": side, "page": page, "rows": _order_rows(page, side), "filters": filters, "query": query},
    )


@login_required
@require_GET
def orders(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _order_list(request, "buyer")


@login_required
@require_GET
def sales(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _order_list(request, "provider")


# --- Entitlements: what the firm may use of what it bought ----------------------------------------------------------

ENTITLEMENTS_PER_PAGE = 25


def _entitlement_row(entitlement: Entitlement, now: Any, api: dict[str, Any] | None = None) -> dict[str, Any]:
    usable = selectors.entitlement_usable(entitlement, now=now)
    row = {
        "entitlement": entitlement,
        "title": _order_title(entitlement.order),
        "provider": firm_name(entitlement.product.provider),
        "delivery": _delivery_label(entitlement.delivery_mode),
        "usable": usable,
        "downloadable": usable and entitlement.delivery_mode == DeliveryMode.FILE,
    }
    if api is not None and entitlement.delivery_mode == DeliveryMode.API:
        # The data gateway: its credential (the prefix only), this period's calls, who may make a new key.
        usage = api["usage"].get(entitlement.pk)
        row["api"] = {
            "credential": api["credentials"].get(entitlement.pk),
            "usage": usage,
            "calls": metering.usage_calls(usage) if usage is not None else 0,
            "may_manage": api["may_manage"] and usable,
        }
    return row


# --- API delivery: the entitlement's data credential -----------------------------------------------------------------

NEW_CREDENTIAL_SESSION_KEY = "settlements.new_data_credential"


@login_required
@require_POST
def entitlement_credential(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A new data credential (the last one stops working), shown once on the next page."""
    membership = _membership(request)
    entitlement = selectors.entitlement_get_for_firm(firm_id=membership.firm_id, pk=pk)
    try:
        credential, raw_key = credentials.credential_issue(entitlement=entitlement, actor=request.user)
    except NotAllowed as exc:
        raise _refuse(exc) from exc
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _see_other(reverse("portal:settlements:entitlements"))
    # Kept in the session (on the server, never in a cookie or a URL) only until the next page has shown it once.
    request.session[NEW_CREDENTIAL_SESSION_KEY] = {"id": credential.pk, "key": raw_key}
    return _see_other(reverse("portal:settlements:entitlement-credential-created", args=[entitlement.pk]))


@never_cache  # the page may carry a raw key: no cache may keep it
@login_required
@require_GET
def entitlement_credential_created(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    entitlement = selectors.entitlement_get_for_firm(firm_id=membership.firm_id, pk=pk)
    new = request.session.pop(NEW_CREDENTIAL_SESSION_KEY, None)
    credential = selectors.data_credential_live(entitlement=entitlement)
    shown = new is not None and credential is not None and new.get("id") == credential.pk
    return render(
        request,
        "settlements/entitlement_credential_created.html",
        {
            "entitlement": entitlement,
            "credential": credential if shown else None,
            "raw_key": new["key"] if shown and new else None,
            **_gateway_urls(request, entitlement),
        },
    )


def _gateway_urls(request: HttpRequest, entitlement: Entitlement) -> dict[str, str]:
    return {
        "rows_url": request.build_absolute_uri(reverse("data:rows", args=[entitlement.pk])),
        "schema_url": request.build_absolute_uri(reverse("data:schema", args=[entitlement.pk])),
        "docs_url": request.build_absolute_uri(reverse("data:docs")),
    }


@login_required
@require_POST
def entitlement_credential_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    entitlement = selectors.entitlement_get_for_firm(firm_id=membership.firm_id, pk=pk)
    credential = selectors.data_credential_live(entitlement=entitlement)
    if credential is None:
        messages.info(request, _("This entitlement has no data credential that works."))
        return _see_other(reverse("portal:settlements:entitlements"))
    credential.entitlement = entitlement
    try:
        credentials.credential_revoke(credential=credential, actor=request.user)
    except NotAllowed as exc:
        raise _refuse(exc) from exc
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The data credential %(key)s is revoked.") % {"key": credential})
    return _see_other(reverse("portal:settlements:entitlements"))


@login_required
@require_POST
def entitlement_stop(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The buyer stops a subscription: it ends with the period paid."""
    membership = _membership(request)
    entitlement = selectors.entitlement_get_for_firm(firm_id=membership.firm_id, pk=pk)
    try:
        stop_subscription(entitlement=entitlement, actor=request.user)
    except NotAllowed as exc:
        raise _refuse(exc) from exc
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The subscription will not renew: it ends with the period paid."))
    return _see_other(reverse("portal:settlements:entitlements"))


@login_required
@require_POST
def entitlement_download(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A new signed link to the entitlement's file, followed at once: the browser downloads it."""
    membership = _membership(request)
    entitlement = selectors.entitlement_get_for_firm(firm_id=membership.firm_id, pk=pk)
    try:
        link = downloads.download_link(entitlement=entitlement, user=request.user)
    except NotAllowed as exc:
        raise _refuse(exc) from exc
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _see_other(reverse("portal:settlements:entitlements"))
    return _see_other(reverse("entitlement-download", args=[link.token]))


@login_required
@require_GET
def entitlements(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = _membership(request)
    queryset = selectors.entitlement_list_for_firm(firm_id=membership.firm_id)
    filters = EntitlementFilterForm(request.GET)
    if filters.is_valid() and filters.cleaned_data["status"]:
        queryset = queryset.filter(status=filters.cleaned_data["status"])
    page, query = _page(request, queryset, ENTITLEMENTS_PER_PAGE)
    now = timezone.now()
    api_ids = [e.pk for e in page.object_list if e.delivery_mode == DeliveryMode.API]
    api = {
        "credentials": selectors.data_credentials_live(entitlement_ids=api_ids) if api_ids else {},
        "usage": selectors.usage_open_for_entitlements(entitlement_ids=api_ids) if api_ids else {},
        "may_manage": membership.role in credentials.ACTING_ROLES,
    }
    return render(
        request,
        "settlements/entitlements.html",
        {
            "page": page,
            "rows": [_entitlement_row(e, now, api) for e in page.object_list],
            "gateway_docs": reverse("data:docs"),
            "filters": filters,
            "query": query,
        },
    )


EVENT_LABELS = {
    "placed": gettext_lazy("Order placed"),
    Order.Status.COMPLIANCE_HOLD: gettext_lazy("Held by compliance"),
    Order.Status.RELEASED: gettext_lazy("Released for delivery"),
    Order.Status.DELIVERED: gettext_lazy("Delivery confirmed by the provider"),
    "note": gettext_lazy("Note from the provider"),
    Order.Status.ACCEPTED: gettext_lazy("Delivery accepted"),
    Order.Status.SETTLED: gettext_lazy("Settled: paid to the provider"),
    Order.Status.DISPUTED: gettext_lazy("Delivery disputed"),
    Order.Status.CANCELLED: gettext_lazy("Cancelled by the buyer"),
    Order.Status.REFUSED: gettext_lazy("Refused by compliance"),
    Order.Status.REFUNDED: gettext_lazy("Refunded by the exchange"),
    "case_changed": gettext_lazy("Compliance case updated"),
    "downloaded": gettext_lazy("Delivered: the buyer downloaded the file"),
    "called": gettext_lazy("Delivered: the buyer's first call of the data API"),
    "queried": gettext_lazy("Delivered: the buyer's first sandbox query"),
    "renewed": gettext_lazy("Renewed for a period"),
    "renewal_unpaid": gettext_lazy("Renewal unpaid: lapsed until the buyer tops up"),
    "renewal_ended": gettext_lazy("Not renewed: the plan or the product is no longer offered"),
    "periods_returned": gettext_lazy("Renewal periods returned to the buyer"),
    "usage_charged": gettext_lazy("Usage of the period charged, the rest of its budget returned"),
}


# What the compliance gate decides, whoever's request it decided on (an order cleared at placement is released in
# the buyer's own request, with the buyer as the recorded actor; the gate released it, not the buyer).
GATE_EVENTS = frozenset({Order.Status.COMPLIANCE_HOLD, Order.Status.RELEASED, Order.Status.REFUSED, "case_changed"})


def actor_name(event: OrderEvent, viewer_firm_id: int) -> str:
    """Who did it, as the viewer may know them: a colleague by name, the other firm by its name (not its people),
    exchange staff as the exchange, and no one as the exchange acting on its own (a task, a compliance decision)."""
    actor = event.actor
    if event.kind in GATE_EVENTS:
        return _("The exchange's compliance gate")
    if actor is None:
        return _("The exchange (automatic)")
    try:
        membership = actor.membership
    except ObjectDoesNotExist:
        membership = None
    if membership is None:
        return _("The exchange")
    if membership.firm_id == viewer_firm_id:
        return actor.get_full_name()
    return firm_name(membership.firm)


def _timeline(order: Order, viewer_firm_id: int, side: str) -> list[dict[str, Any]]:
    rows = []
    for event in selectors.order_events(order=order):
        data = event.data or {}
        label = EVENT_LABELS.get(event.kind, event.kind)
        if event.kind == Order.Status.ACCEPTED and event.actor_id is None:
            label = _("Accepted automatically: the acceptance window closed")
        details: list[str] = []
        if event.kind == "placed" and side == "buyer" and data.get("total"):
            details.append(
                _("%(total)s %(currency)s held in escrow")
                % {"total": data["total"], "currency": data.get("currency", "")}
            )
        if data.get("reason"):
            details.append(str(data["reason"]))
        if data.get("text"):
            details.append(str(data["text"]))
        missing = display.missing_labels(data.get("missing", [])) if data.get("missing") else []
        rows.append(
            {
                "when": event.created_at,
                "kind": event.kind,
                "label": label,
                "who": actor_name(event, viewer_firm_id),
                "details": details,
                "missing": missing,
            }
        )
    return rows


@dataclass
class Action:
    name: str
    side: str  # "buyer" or "provider"
    statuses: tuple[str, ...]
    label: Any
    title: Any
    explanation: Any
    form_class: type[Any]
    button: Any
    danger: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


ACTIONS: dict[str, Action] = {
    "cancel": Action(
        "cancel",
        "buyer",
        (Order.Status.COMPLIANCE_HOLD, Order.Status.RELEASED),
        gettext_lazy("Cancel the order"),
        gettext_lazy("Cancel this order?"),
        gettext_lazy("The order ends and all it holds in escrow returns to your firm's cash. This cannot be undone."),
        CancelForm,
        gettext_lazy("Cancel the order"),
        danger=True,
    ),
    "accept": Action(
        "accept",
        "buyer",
        (Order.Status.DELIVERED,),
        gettext_lazy("Accept the delivery"),
        gettext_lazy("Accept the delivery?"),
        gettext_lazy(
            "Accepting tells the exchange the data was delivered as ordered: the escrow is then paid to the provider, "
            "net of the exchange's fee. It cannot be disputed afterwards."
        ),
        AcceptForm,
        gettext_lazy("Accept the delivery"),
    ),
    "dispute": Action(
        "dispute",
        "buyer",
        (Order.Status.DELIVERED,),
        gettext_lazy("Dispute the delivery"),
        gettext_lazy("Dispute the delivery"),
        gettext_lazy(
            "The money stays in escrow while a settlement clerk looks at the dispute; they pay it to the provider or "
            "refund it to your firm, wholly or in part."
        ),
        DisputeForm,
        gettext_lazy("Dispute the delivery"),
        danger=True,
    ),
    "deliver": Action(
        "deliver",
        "provider",
        (Order.Status.RELEASED,),
        gettext_lazy("Confirm delivery"),
        gettext_lazy("Confirm the delivery"),
        gettext_lazy(
            "Confirm that your firm has delivered the data. The buyer then accepts the delivery or disputes it; "
            "without either, it is accepted automatically after %(days)s days."
        ),
        DeliveryForm,
        gettext_lazy("Confirm delivery"),
    ),
}


def _may(user: Any, order: Order, action: Action) -> bool:
    return may_act_as_buyer(user, order) if action.side == "buyer" else may_act_as_provider(user, order)


def _open_now(order: Order, action: Action) -> bool:
    if order.status not in action.statuses:
        return False
    if action.name == "dispute" and order.acceptance_due_at is not None:
        return order.acceptance_due_at > timezone.now()
    return True


def _explanation(action: Action) -> str:
    text = str(action.explanation)
    return text % {"days": settings.SETTLEMENT_ACCEPTANCE_DAYS} if action.name == "deliver" else text


@login_required
@require_GET
def order_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    order = selectors.order_get_for_firm(firm_id=membership.firm_id, pk=pk)
    side = "buyer" if order.buyer_firm_id == membership.firm_id else "provider"
    actions = [a for a in ACTIONS.values() if a.side == side and _open_now(order, a) and _may(request.user, order, a)]
    charges = list(order.charges.all())
    entitlement = None
    if side == "buyer":  # the buyer's right to the data; the provider sees the sale
        entitlement = Entitlement.objects.filter(order=order).select_related("product__provider").first()
        if entitlement is not None:
            entitlement.order = order
    return render(
        request,
        "settlements/order_detail.html",
        {
            "order": order,
            "entitlement": entitlement and _entitlement_row(entitlement, timezone.now()),
            "side": side,
            "bought": bought(order),
            "delivery_label": _delivery_label(order.delivery_mode),
            "timeline": _timeline(order, membership.firm_id, side),
            "charges": charges,
            "returned": sum((c.refunded for c in charges), Decimal("0.00")),
            "paid_out": sum((c.provider_net for c in charges), Decimal("0.00")),
            "net": order.price - order.provider_fee,
            "actions": actions,
            "buyer_name": firm_name(order.buyer_firm),
            "provider_name": firm_name(order.provider_firm),
            "read_only": not (may_act_as_buyer(request.user, order) or may_act_as_provider(request.user, order)),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def order_action(request: AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    """GET: what the step does, with its form (a reason, a note) and a button; POST: the step, by its service."""
    membership = _membership(request)
    order = selectors.order_get_for_firm(firm_id=membership.firm_id, pk=pk)
    step = ACTIONS[action]
    order_url = reverse("portal:settlements:order", args=[order.pk])
    if not _may(request.user, order, step):
        if step.side == "buyer":
            raise PermissionDenied(_("Only the buyer's administrators and traders may do this."))
        raise PermissionDenied(_("Only the provider's administrators and traders may do this."))
    form = step.form_class(request.POST if request.method == "POST" else None)
    if request.method == "GET" and not _open_now(order, step):
        messages.info(
            request,
            _("This order is %(status)s: that step is not open now.") % {"status": order.get_status_display()},
        )
        return _see_other(order_url)
    if request.method == "POST" and form.is_valid():
        try:
            _act(step, order, request.user, form.cleaned_data)
        except NotAllowed as exc:
            raise _refuse(exc) from None
        except ApplicationError as exc:
            if exc.code == "reason_required" and "reason" in form.fields:
                form.add_error("reason", exc.message)
            else:
                messages.error(request, exc.message)
                return _see_other(order_url)
        else:
            messages.success(request, _DONE[step.name] % {"reference": order.reference})
            return _see_other(order_url)
    return render(
        request,
        "settlements/order_action.html",
        {
            "order": order,
            "title": _order_title(order),
            "step": step,
            "explanation": _explanation(step),
            "form": form,
            "held": order.total if step.name == "cancel" else None,
        },
        status=400 if form.is_bound else 200,
    )


_DONE = {
    "cancel": gettext_lazy("Order %(reference)s is cancelled; its escrow is back in your firm's cash."),
    "accept": gettext_lazy("You accepted the delivery of order %(reference)s; the provider is paid."),
    "dispute": gettext_lazy("Order %(reference)s is disputed; a settlement clerk will resolve it."),
    "deliver": gettext_lazy("Delivery of order %(reference)s is confirmed; the buyer now accepts or disputes it."),
}


def _act(step: Action, order: Order, user: Any, data: dict[str, Any]) -> Order:
    if step.name == "cancel":
        return order_cancel(order=order, actor=user, reason=data.get("reason", ""))
    if step.name == "accept":
        return order_accept(order=order, actor=user)
    if step.name == "dispute":
        return order_dispute(order=order, actor=user, reason=data.get("reason", ""))
    return order_confirm_delivery(order=order, actor=user, note=data.get("note", ""))


# --- Access requests ------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def access_request_new(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    product = product_get_for_user(user=request.user, pk=pk)
    revision = product.listed_revision
    if membership.role not in selectors.ORDER_ROLES:
        raise PermissionDenied(_("Access requests are filed by a member firm's administrators and traders."))
    if product.provider_id == membership.firm_id:
        return _refused_page(
            request,
            product,
            ApplicationError(_("This is your own firm's product."), code="own_product", status_code=403),
        )
    latest = selectors.access_request_latest(buyer_firm_id=membership.firm_id, product_id=product.pk)
    if latest is not None and latest.status in (AccessRequest.Status.PENDING, AccessRequest.Status.APPROVED):
        messages.info(request, _("Your firm has a request for this product waiting or approved already."))
        return _see_other(reverse("portal:settlements:access-request", args=[latest.pk]))
    if revision is not None and not revision.requires_approval:
        messages.info(request, _("This product needs no approval: order it directly."))
        return _see_other(reverse("portal:product", args=[product.pk]) + "#plans")
    form = AccessRequestForm(
        request.POST if request.method == "POST" else None,
        cross_border=product.board.is_cross_border,
        country=str(membership.firm.country),
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                created = access.access_request_create(
                    actor=request.user,
                    product_id=product.pk,
                    intended_use=form.cleaned_data["intended_use"],
                    destination=form.cleaned_data.get("destination", ""),
                )
            except NotAllowed as exc:
                raise _refuse(exc) from None
            except ApplicationError as exc:
                add_refusal(form, exc)
                status = exc.status_code
            else:
                messages.success(
                    request, _("Your access request is sent. The provider approves or declines it, with a reason.")
                )
                return _see_other(reverse("portal:settlements:access-request", args=[created.pk]))
    return render(
        request,
        "settlements/access_request_form.html",
        {"product": product, "title": _product_title(product), "form": form, "firm": membership.firm},
        status=status,
    )


def _request_rows(page: Page) -> list[dict[str, Any]]:
    now = timezone.now()
    rows = []
    for item in page.object_list:
        revision = item.product.listed_revision
        rows.append(
            {
                "request": item,
                "title": revision.title if revision is not None else str(item.product),
                "usable": item.status == AccessRequest.Status.APPROVED
                and item.approval_expires_at is not None
                and item.approval_expires_at > now,
                "destination": _country(item.destination),
            }
        )
    return rows


def _request_list(request: AuthenticatedHttpRequest, side: str) -> HttpResponse:
    membership = _membership(request)
    if side == "buyer":
        requests = selectors.access_request_list_for_buyer(firm_id=membership.firm_id)
    else:
        requests = selectors.access_request_list_for_provider(firm_id=membership.firm_id)
    filters = AccessRequestFilterForm(request.GET)
    if filters.is_valid() and filters.cleaned_data["status"]:
        requests = requests.filter(status=filters.cleaned_data["status"])
    page, query = _page(request, requests, ORDERS_PER_PAGE)
    rows = _request_rows(page)
    acting = membership.role in selectors.ORDER_ROLES
    if side == "provider" and acting:
        for row in rows:
            if row["request"].status == AccessRequest.Status.PENDING:
                pk = row["request"].pk
                row["approve_form"] = ApproveForm(auto_id=f"approve-{pk}-%s")
                row["decline_form"] = DeclineForm(auto_id=f"decline-{pk}-%s")
    return render(
        request,
        "settlements/access_requests.html",
        {"side": side, "page": page, "rows": rows, "filters": filters, "query": query},
    )


@login_required
@require_GET
def access_requests(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _request_list(request, "buyer")


@login_required
@require_GET
def access_requests_incoming(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _request_list(request, "provider")


def _request_page(
    request: AuthenticatedHttpRequest,
    membership: Membership,
    item: AccessRequest,
    *,
    approve_form: ApproveForm | None = None,
    decline_form: DeclineForm | None = None,
    status: int = 200,
) -> HttpResponse:
    side = "buyer" if item.buyer_firm_id == membership.firm_id else "provider"
    acting = membership.role in selectors.ORDER_ROLES
    pending = item.status == AccessRequest.Status.PENDING
    revision = item.product.listed_revision
    plans: list[PricePlan] = []
    usable = (
        item.status == AccessRequest.Status.APPROVED
        and item.approval_expires_at is not None
        and item.approval_expires_at > timezone.now()
    )
    if side == "buyer" and usable:
        plans = list(item.product.plans.filter(plans_visible_q(membership.firm_id)).order_by("amount", "id"))
    return render(
        request,
        "settlements/access_request_detail.html",
        {
            "item": item,
            "side": side,
            "title": revision.title if revision is not None else str(item.product),
            "buyer_name": firm_name(item.buyer_firm),
            "provider_name": firm_name(item.product.provider),
            "destination": _country(item.destination),
            "decided_by": _decider(item, membership.firm_id),
            "can_decide": side == "provider" and acting and pending,
            "can_withdraw": side == "buyer" and acting and pending,
            "approve_form": approve_form or ApproveForm(auto_id="approve-%s"),
            "decline_form": decline_form or DeclineForm(auto_id="decline-%s"),
            "usable": usable,
            "plans": plans if acting else [],
        },
        status=status,
    )


def _decider(item: AccessRequest, viewer_firm_id: int) -> str:
    if item.decided_by is None:
        return ""
    if item.product.provider_id == viewer_firm_id:
        return item.decided_by.get_full_name()
    return firm_name(item.product.provider)


@login_required
@require_GET
def access_request_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    item = selectors.access_request_get_for_firm(firm_id=membership.firm_id, pk=pk)
    return _request_page(request, membership, item)


@login_required
@require_POST
def access_request_decide(request: AuthenticatedHttpRequest, pk: int, decision: str) -> HttpResponse:
    membership = _membership(request)
    item = selectors.access_request_get_for_firm(firm_id=membership.firm_id, pk=pk)
    url = reverse("portal:settlements:access-request", args=[item.pk])
    if decision == "approve":
        form: ApproveForm | DeclineForm = ApproveForm(request.POST, auto_id="approve-%s")
    else:
        form = DeclineForm(request.POST, auto_id="decline-%s")
    if not form.is_valid():
        kwargs = {"approve_form": form} if decision == "approve" else {"decline_form": form}
        return _request_page(request, membership, item, status=400, **kwargs)  # type: ignore[arg-type]  # the form of its kind
    try:
        if decision == "approve":
            access.access_request_approve(request=item, actor=request.user, reason=form.cleaned_data["reason"])
        else:
            access.access_request_decline(request=item, actor=request.user, reason=form.cleaned_data["reason"])
    except NotAllowed as exc:
        raise _refuse(exc) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _see_other(url)
    if decision == "approve":
        messages.success(request, _("You approved the request of %(buyer)s.") % {"buyer": firm_name(item.buyer_firm)})
    else:
        messages.success(request, _("You declined the request of %(buyer)s.") % {"buyer": firm_name(item.buyer_firm)})
    return _see_other(url)


@login_required
@require_POST
def access_request_withdraw(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    item = selectors.access_request_get_for_firm(firm_id=membership.firm_id, pk=pk)
    try:
        access.access_request_withdraw(request=item, actor=request.user)
    except NotAllowed as exc:
        raise _refuse(exc) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Your access request is withdrawn."))
    return _see_other(reverse("portal:settlements:access-request", args=[item.pk]))


# --- Balances, ledger lines, deposits and withdrawals -----------------------------------------------------------------


def _line_what(posting: Posting) -> dict[str, Any]:
    """What a statement line is about: its entry's kind, and the order, withdrawal or deposit it belongs to."""
    entry = posting.entry
    what: dict[str, Any] = {"kind": entry.get_kind_display(), "order": None, "reference": ""}
    charge = entry.charge
    if charge is not None:
        what["order"] = charge.order
    elif entry.reference.startswith("withdrawal:"):
        number = entry.reference.partition(":")[2]
        what["reference"] = f"W-{int(number):06d}" if number.isdigit() else entry.reference
    else:
        try:
            what["reference"] = entry.deposit.bank_reference
        except ObjectDoesNotExist:
            what["reference"] = ""
    return what


@login_required
@require_GET
def balances(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The firm's money per currency, and its ledger lines, each from the firm's point of view: money in (the
    exchange owes the firm more) and money out."""
    membership = _membership(request)
    firm_id = membership.firm_id
    lines = selectors.statement_lines(firm_id=firm_id)
    filters = StatementFilterForm(request.GET)
    currency = kind = ""
    if filters.is_valid():
        currency, kind = filters.cleaned_data["currency"], filters.cleaned_data["account"]
        if currency:
            lines = lines.filter(account__currency=currency)
        if kind:
            lines = lines.filter(account__kind=kind)
    page, query = _page(request, lines, LINES_PER_PAGE)
    postings = list(page.object_list)
    # One account chosen: its balance runs down the page, back from its cached balance.
    account = selectors.account_of_firm(firm_id=firm_id, kind=kind, currency=currency) if currency and kind else None
    running = None
    if account is not None and postings:
        running = account.balance - selectors.account_change_after(account=account, posting_id=postings[0].pk)
    rows = []
    for posting in postings:
        change = posting.amount * posting.account.sign
        rows.append(
            {
                "posting": posting,
                "when": posting.entry.created_at,
                "what": _line_what(posting),
                "account": posting.account.get_kind_display(),
                "currency": posting.currency,
                "money_in": change if change > 0 else None,
                "money_out": -change if change < 0 else None,
                "balance": running,
            }
        )
        if running is not None:
            running -= change
    return render(
        request,
        "settlements/balances.html",
        {
            "firm": membership.firm,
            "balances": selectors.balances_for_firm(firm_id=firm_id),
            "page": page,
            "rows": rows,
            "filters": filters,
            "query": query,
            "running": account is not None,
        },
    )


def deposit_reference(firm: MemberFirm) -> str:
    """The payment reference a firm quotes on its transfers: its USCC, else its LEI (what the bank statement import
    matches a deposit to a firm by: settlements.selectors.firm_for_deposit_reference)."""
    return firm.uscc or firm.lei


def bank_accounts() -> list[dict[str, str]]:
    rows = []
    for currency, account in settings.SETTLEMENT_BANK_ACCOUNTS.items():
        if currency not in CURRENCIES:
            continue
        rows.append(
            {
                "currency": currency,
                "bank": bilingual(account.get("bank", ""), account.get("bank_zh", "")),
                "account_name": bilingual(account.get("account_name", ""), account.get("account_name_zh", "")),
                "account_number": account.get("account_number", ""),
                "swift": account.get("swift", ""),
                "demo": bool(account.get("demo")),
            }
        )
    return rows


@require_GET
def fees(request: HttpRequest) -> HttpResponse:
    """The fees in force on each board and currency, and those staff have scheduled: public, as the boards are."""
    return render(request, "settlements/fees.html", {"published": selectors.fee_schedules_published()})


@login_required
@require_GET
def deposit_instructions(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = _membership(request)
    firm = membership.firm
    return render(
        request,
        "settlements/deposits.html",
        {
            "firm": firm,
            "reference": deposit_reference(firm),
            "reference_kind": _("Unified Social Credit Code") if firm.uscc else _("Legal Entity Identifier"),
            "accounts": bank_accounts(),
            "deposits": selectors.deposit_list_for_firm(firm_id=firm.pk)[:20],
        },
    )


def _available(firm_id: int) -> dict[str, Decimal]:
    return {b.currency: b.cash for b in selectors.balances_for_firm(firm_id=firm_id)}


def _firm_admin(membership: Membership, message: str) -> None:
    if membership.role != Membership.Role.FIRM_ADMIN:
        raise PermissionDenied(message)


@login_required
@require_http_methods(["GET", "POST"])
def withdrawal_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The firm's withdrawals; its administrators also request new ones here (of available cash only)."""
    membership = _membership(request)
    firm = membership.firm
    is_admin = membership.role == Membership.Role.FIRM_ADMIN
    available = _available(firm.pk)
    form = None
    status = 200
    if request.method == "POST":
        _firm_admin(membership, _("Only the firm's administrators request withdrawals."))
        form = WithdrawalForm(request.POST, available=available)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                withdrawal = withdrawals.withdrawal_request(
                    firm=firm,
                    currency=data["currency"],
                    amount=data["amount"],
                    bank_account=data["bank_account"],
                    actor=request.user,
                )
            except NotAllowed as exc:
                raise _refuse(exc) from None
            except ApplicationError as exc:
                add_refusal(form, exc)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    _("Withdrawal %(number)s is requested: %(amount)s %(currency)s wait for a settlement clerk.")
                    % {
                        "number": f"W-{withdrawal.pk:06d}",
                        "amount": withdrawal.amount,
                        "currency": withdrawal.currency,
                    },
                )
                return _see_other(reverse("portal:settlements:withdrawals"))
    elif is_admin:
        currencies = [c for c, cash in available.items() if cash > 0]
        form = WithdrawalForm(initial={"currency": currencies[0]} if currencies else None, available=available)
    page, query = _page(request, selectors.withdrawal_list_for_firm(firm_id=firm.pk), ORDERS_PER_PAGE)
    return render(
        request,
        "settlements/withdrawals.html",
        {
            "firm": firm,
            "form": form,
            "is_admin": is_admin,
            "available": sorted(available.items()),
            "page": page,
            "query": query,
            "rows": [{"withdrawal": w, "number": f"W-{w.pk:06d}"} for w in page.object_list],
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def withdrawal_cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    withdrawal = selectors.withdrawal_get_for_firm(firm_id=membership.firm_id, pk=pk)
    _firm_admin(membership, _("Only the firm's administrators cancel its withdrawals."))
    back = reverse("portal:settlements:withdrawals")
    if request.method == "POST":
        try:
            withdrawals.withdrawal_cancel(withdrawal=withdrawal, actor=request.user)
        except NotAllowed as exc:
            raise _refuse(exc) from None
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("The withdrawal is cancelled; its amount is back in your firm's cash."))
        return _see_other(back)
    if withdrawal.status != Withdrawal.Status.REQUESTED:
        messages.info(request, _("Only a withdrawal not yet approved can be cancelled."))
        return _see_other(back)
    return render(
        request,
        "settlements/withdrawal_cancel.html",
        {"withdrawal": withdrawal, "number": f"W-{withdrawal.pk:06d}"},
    )
