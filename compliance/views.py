"""Portal pages of compliance: a firm's evidence on file, its export counters, and the trade pre-check.

Views stay thin: selectors decide what the member sees (another firm's filing is a 404), services do every
write and say no with an ApplicationError or a ValidationError, which the page shows as a form error or a
message, never as a server error. Only members of a firm have these pages; staff work in the admin.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_countries import countries

from exchange.exceptions import ApplicationError, NotAllowed
from exchange.files import file_response
from exchange.forms import add_service_errors, add_service_messages
from exchange.models import Membership
from exchange.selectors import user_membership
from exchange.types import AuthenticatedHttpRequest
from listings.selectors import product_list_catalogue, product_list_for_provider

from . import display, selectors, services
from .forms import FilingForm, PrecheckForm, ReceiptForm, product_title, read_capped
from .models import EvidenceKind, Filing
from .services.filings import filing_may_submit


def _membership(request: AuthenticatedHttpRequest) -> Membership:
    """The member's membership; anyone without a firm (staff included) finds no such page."""
    membership = user_membership(request.user)
    if membership is None:
        raise Http404
    return membership


def _own_products(request: AuthenticatedHttpRequest) -> Any:
    return product_list_for_provider(user=request.user)


def _counter_rows(counter: selectors.CounterView) -> list[dict[str, Any]]:
    limits = counter.thresholds
    rows = [
        (
            _("Individuals whose personal information left China"),
            _("standard contract or certification from"),
            counter.personal_info_subjects,
            limits["personal_info_exempt_below"],
        ),
        (
            _("Individuals whose personal information left China"),
            _("security assessment from"),
            counter.personal_info_subjects,
            limits["personal_info_security_assessment_from"],
        ),
        (
            _("Individuals whose sensitive personal information left China"),
            _("security assessment from"),
            counter.sensitive_personal_info_subjects,
            limits["sensitive_personal_info_security_assessment_from"],
        ),
    ]
    return [
        {
            "label": label,
            "threshold": threshold,
            "value": value,
            "limit": limit,
            "percent": counter.percent(value, limit),
        }
        for label, threshold, value, limit in rows
    ]


def _filing_rows(filings: list[Filing], *, may_file: bool) -> list[dict[str, Any]]:
    rows = []
    for filing in filings:
        receipt_pending = (
            filing.kind == EvidenceKind.STANDARD_CONTRACT
            and not filing.receipt_filed_on
            and filing.status in (Filing.Status.SUBMITTED, Filing.Status.ACCEPTED)
        )  # a receipt added but not yet checked shows as "waiting for an officer", without the form
        rows.append(
            {
                "filing": filing,
                "products": [product_title(p) for p in filing.products.all()],
                "destinations": [str(countries.name(c)) or c for c in filing.destinations],
                "receipt_form": ReceiptForm(auto_id=f"receipt-{filing.pk}-%s")
                if receipt_pending and may_file
                else None,
            }
        )
    return rows


def _home_page(
    request: AuthenticatedHttpRequest, membership: Membership, *, form: FilingForm | None = None, status: int = 200
) -> HttpResponse:
    firm_id = membership.firm_id
    may_file = filing_may_submit(request.user, membership.firm)
    counter = selectors.counter_for_firm(firm_id=firm_id)
    if form is None and may_file:
        form = FilingForm(products=_own_products(request))
    affected = [
        {
            "product": row.product,
            "destination": str(countries.name(row.destination)) or row.destination,
            "decision": display.decision_label(row.decision),
            "missing": display.missing_labels(row.missing),
        }
        for row in selectors.products_affected(firm_id=firm_id)
    ]
    return render(
        request,
        "compliance/home.html",
        {
            "firm": membership.firm,
            "may_file": may_file,
            "form": form,
            "filings": _filing_rows(list(selectors.filing_list_for_firm(firm_id=firm_id)), may_file=may_file),
            "counter": counter,
            "counter_rows": _counter_rows(counter),
            "affected": affected,
        },
        status=status,
    )


@login_required
@require_GET
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _home_page(request, _membership(request))


@login_required
@require_POST
def filing_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = _membership(request)
    form = FilingForm(request.POST, request.FILES, products=_own_products(request))
    if not form.is_valid():
        return _home_page(request, membership, form=form)
    data = form.cleaned_data
    upload = data["document"]
    limit = settings.COMPLIANCE_FILING_MAX_BYTES
    # One byte past the limit is enough for the service to refuse it; never read a huge upload whole.
    content = upload.read(limit + 1)
    try:
        filing = services.filing_submit(
            exporter=membership.firm,
            actor=request.user,
            kind=data["kind"],
            reference=data["reference"],
            issued_on=data["issued_on"],
            expires_on=data["expires_on"],
            document_name=upload.name,
            document=content,
            products=list(data["products"]),
            all_products=data["all_products"],
            destinations=data["destinations"],
            receipt_reference=data["receipt_reference"],
            receipt_filed_on=data["receipt_filed_on"],
            buyer_firm=data["buyer_firm"],
            receipt_document_name=data["receipt_document"].name if data["receipt_document"] else "",
            receipt_document=read_capped(data["receipt_document"]),
        )
    except NotAllowed as exc:
        form.add_error(None, exc.message)
        return _home_page(request, membership, form=form, status=403)
    except (ValidationError, ApplicationError) as exc:
        add_service_errors(form, exc)
    else:
        messages.success(
            request,
            _("%(kind)s %(reference)s is filed. A compliance officer will decide on it.")
            % {"kind": capfirst(filing.get_kind_display()), "reference": filing.reference},
        )
        return redirect("portal:compliance:home")
    return _home_page(request, membership, form=form)


@login_required
@require_POST
def filing_receipt(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    filing = selectors.filing_get_for_user(user=request.user, pk=pk)
    form = ReceiptForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            for message in errors:
                messages.error(request, message)  # type: ignore[arg-type]  # an ErrorList yields its messages
    else:
        try:
            upload = form.cleaned_data["receipt_document"]
            services.filing_add_receipt(
                filing=filing,
                actor=request.user,
                receipt_reference=form.cleaned_data["receipt_reference"],
                receipt_filed_on=form.cleaned_data["receipt_filed_on"],
                document_name=upload.name,
                document=upload.read(settings.COMPLIANCE_FILING_MAX_BYTES + 1),
            )
        except (ApplicationError, ValidationError) as exc:  # NotAllowed and InvalidTransition included
            add_service_messages(request, exc)
        else:
            messages.success(
                request, _("The filing receipt is added: it counts once a compliance officer has checked it.")
            )
    return redirect(reverse("portal:compliance:home") + f"#filing-{filing.pk}")


@never_cache
@login_required
@require_GET
def filing_document(request: AuthenticatedHttpRequest, pk: int) -> FileResponse:
    filing = selectors.filing_get_for_user(user=request.user, pk=pk)
    return file_response(filing.document, filename_stem=f"{filing.kind}-{filing.pk}")


@login_required
@require_GET
def precheck(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Would a trade of this product be cleared for the member's firm today? Writes nothing."""
    membership = _membership(request)
    # Listed products the member may buy: what the catalogue shows it, less its own firm's.
    products = (
        product_list_catalogue(user=request.user)
        .exclude(provider_id=membership.firm_id)
        .order_by("listed_revision__title_en", "pk")
    )
    data: QueryDict | None = request.GET if "product" in request.GET else None
    if data is not None and "delivery" not in data:
        data = data.copy()
        data["delivery"] = "file"
    form = PrecheckForm(data, products=products)
    result = None
    if form.is_bound and form.is_valid():
        try:
            clearance = selectors.trade_precheck(
                product=form.cleaned_data["product"],
                buyer_firm=membership.firm,
                delivery=form.cleaned_data["delivery"],
            ).for_buyer()
        except ApplicationError as exc:  # e.g. a delivery mode the product does not offer
            form.add_error("delivery" if exc.code.startswith("delivery") else None, str(exc))
        else:
            result = display.verdict(clearance)
    return render(
        request,
        "compliance/precheck.html",
        {
            "form": form,
            "firm": membership.firm,
            "result": result,
            "product": form.cleaned_data["product"] if result else None,
        },
    )
