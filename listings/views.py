"""Portal pages of the catalogue: browsing and reading products, and the provider's own products.

Views stay thin: forms check the shape of the input, selectors decide what the user sees (a product the
user may not see is a 404), services do every write and say no with an ApplicationError or a
ValidationError, which the page shows as a form error or a message, never as a server error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import FileResponse, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_countries import countries

from exchange.exceptions import ApplicationError, NotAllowed
from exchange.files import file_response
from exchange.forms import add_service_errors, add_service_messages
from exchange.models import Board
from exchange.selectors import board_access, user_firm_id
from exchange.types import AuthenticatedHttpRequest

from . import services
from .filters import SORTS, CatalogueFilter
from .forms import (
    DatasetUploadForm,
    ObjectionForm,
    PricePlanForm,
    ProductContentForm,
    ProductCreateForm,
    ReasonForm,
    SampleUploadForm,
    dictionary_formset,
)
from .models import (
    Classification,
    DataProduct,
    DeliveryMode,
    FieldType,
    ListingStatus,
    PricePlan,
    Revision,
    SandboxRole,
    bilingual,
)
from .selectors import (
    catalogue_facets,
    category_list,
    dataset_of,
    dataset_shown,
    dictionary_diff,
    plans_for_user,
    product_get_for_user,
    product_get_own,
    product_is_own,
    product_list_catalogue,
    product_list_for_provider,
    product_list_in_notice,
    revision_diff,
    revision_for_display,
    revision_list,
)

PAGE_SIZE = 20
# The catalogue's GET parameters that a facet link or the search form carries along.
FILTER_PARAMS = (
    "q", "board", "category", "classification", "delivery_mode", "currency",
    "price_min", "price_max", "provider_country", "contains_personal_info", "sort",
)  # fmt: skip


# --- Display helpers ---------------------------------------------------------------------------------


def _label(choices: Any, value: Any) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def _prices_from(plans: list[PricePlan]) -> list[tuple[str, Any]]:
    """The lowest price of the visible plans, per currency: amounts in two currencies do not compare."""
    lowest: dict[str, Any] = {}
    for plan in plans:
        if plan.currency not in lowest or plan.amount < lowest[plan.currency]:
            lowest[plan.currency] = plan.amount
    return sorted(lowest.items())


def _plans(request: AuthenticatedHttpRequest, product: DataProduct) -> list[PricePlan]:
    plans = plans_for_user(user=request.user, product=product)
    for plan in plans:
        plan.unit_price_display = _unit_price(plan.unit_price)  # type: ignore[attr-defined]
    return plans


def _unit_price(value: Any) -> str:
    """A metered unit price without its six places of trailing zeros (0.050000 -> 0.05)."""
    if value is None:
        return ""
    whole, _dot, fraction = format(value.normalize(), "f").partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _country_names(codes: list[str]) -> list[str]:
    return [str(countries.name(code)) or code for code in codes]


@dataclass
class Card:
    product: DataProduct
    revision: Revision
    provider_name: str
    prices_from: list[tuple[str, Any]]
    delivery_modes: list[str]


def _card(product: DataProduct) -> Card:
    revision = product.listed_revision
    assert revision is not None  # the catalogue lists listed products only
    provider = product.provider
    return Card(
        product=product,
        revision=revision,
        provider_name=bilingual(provider.legal_name_en, provider.legal_name_zh),
        prices_from=_prices_from(getattr(product, "visible_plans", [])),
        delivery_modes=[_label(DeliveryMode, m) for m in revision.delivery_modes],
    )


@dataclass
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool
    url: str


@dataclass
class Facet:
    name: str
    label: str
    values: list[FacetValue] = field(default_factory=list)


def _query_with(params: QueryDict, name: str, value: str | None) -> str:
    """The catalogue's query string with `name` set to `value` (removed if None), back on page one."""
    query = params.copy()
    query.pop("page", None)
    if value is None:
        query.pop(name, None)
    else:
        query[name] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


def _facets(request: AuthenticatedHttpRequest, counts: dict[str, dict[str, int]]) -> list[Facet]:
    params = request.GET
    board_names = {b.code: b.name for b in Board.objects.filter(code__in=list(counts.get("board", {})))}
    category_names = {c.code: c.name for c in category_list()}
    labels: dict[str, tuple[str, Any]] = {
        "board": (_("Board"), lambda v: board_names.get(v, v)),
        "category": (_("Category"), lambda v: category_names.get(v, v)),
        "classification": (_("Classification"), lambda v: _label(Classification, v)),
        "delivery_mode": (_("Delivery mode"), lambda v: _label(DeliveryMode, v)),
        "currency": (_("Currency"), lambda v: v),
        "provider_country": (_("Provider's country"), lambda v: str(countries.name(v)) or v),
        "contains_personal_info": (
            _("Contains personal information"),
            lambda v: _("Yes") if v == "true" else _("No"),
        ),
    }
    facets = []
    for name, (label, describe) in labels.items():
        facet = Facet(name=name, label=label)
        for value, count in counts.get(name, {}).items():
            if not count or value in ("", "None"):
                continue
            selected = params.get(name) == value
            facet.values.append(
                FacetValue(
                    value=value,
                    label=describe(value),
                    count=count,
                    selected=selected,
                    url=_query_with(params, name, None if selected else value),
                )
            )
        facet.values.sort(key=lambda v: (-v.count, v.label))
        facets.append(facet)
    return facets


# --- The catalogue -----------------------------------------------------------------------------------


@login_required
@require_GET
def catalogue(request: AuthenticatedHttpRequest) -> HttpResponse:
    firm_id = user_firm_id(request.user)
    visible = product_list_catalogue(user=request.user)
    catalogue_filter = CatalogueFilter(request.GET, queryset=visible, firm_id=firm_id)
    # A filter we cannot read narrows nothing: the page says so and shows the catalogue unfiltered.
    products = catalogue_filter.qs if catalogue_filter.is_valid() else visible.order_by("-listed_at", "-pk")
    paginator = Paginator(products, PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))  # junk -> page 1, past the end -> the last page
    facets = _facets(request, catalogue_facets(queryset=products, firm_id=firm_id))
    form = catalogue_filter.form
    errors = [(str(form.fields[name].label) if name in form.fields else name, e) for name, e in form.errors.items()]
    selected = {f.name: (f.label, v.label) for f in facets for v in f.values if v.selected}
    active = [
        (*selected.get(param, (form.fields[param].label, request.GET[param])), _query_with(request.GET, param, None))
        for param in FILTER_PARAMS
        if param not in ("q", "sort", "price_min", "price_max") and request.GET.get(param) and param not in form.errors
    ]
    page_query = request.GET.copy()
    page_query.pop("page", None)
    return render(
        request,
        "listings/catalogue.html",
        {
            "page": page,
            "cards": [_card(p) for p in page.object_list],
            "filter": catalogue_filter,
            "errors": errors,
            "facets": facets,
            "active": active,
            "sorts": list(SORTS.items()),
            "current_sort": request.GET.get("sort") or ("relevance" if request.GET.get("q") else "newest"),
            "hidden": [(p, request.GET[p]) for p in FILTER_PARAMS if p not in ("q", "sort") and request.GET.get(p)],
            "page_query": page_query.urlencode(),
        },
    )


# --- The product page ----------------------------------------------------------------------------------


def _requested_revision(request: AuthenticatedHttpRequest) -> int | None:
    try:
        return int(request.GET["revision"])
    except (KeyError, ValueError):
        return None


def _displayed(request: AuthenticatedHttpRequest, pk: int) -> tuple[DataProduct, Revision]:
    product = product_get_for_user(user=request.user, pk=pk)
    revision = revision_for_display(user=request.user, product=product, number=_requested_revision(request))
    return product, revision


def _licence_terms(revision: Revision) -> dict[str, Any]:
    terms = revision.licence_terms or {}
    territories = terms.get("territories", [])
    return {
        "purposes": terms.get("purposes", []),
        "worldwide": "worldwide" in territories,
        "territories": _country_names([t for t in territories if t != "worldwide"]),
        "duration_months": terms.get("duration_months"),
        "onward_transfer": bool(terms.get("onward_transfer")),
        "resale": bool(terms.get("resale")),
    }


def _dictionary_rows(revision: Revision) -> list[dict[str, Any]]:
    return [
        {**f, "type_label": _label(FieldType, f.get("type")), "sandbox_label": _label(SandboxRole, f.get("sandbox", ""))}
        for f in revision.dictionary
    ]


def _product_page(
    request: AuthenticatedHttpRequest,
    product: DataProduct,
    revision: Revision,
    objection_form: ObjectionForm | None = None,
) -> HttpResponse:
    open_revision = services.open_revision(product)
    can_object = services.objection_may_lodge(request.user, product, open_revision)
    notice_changes: list[str] = []
    if can_object and open_revision is not None and product.listed_revision is not None:
        # What the revision in public notice would change, so that members know what they may object to.
        notice_changes = [
            capfirst(Revision._meta.get_field(name).verbose_name)  # type: ignore[union-attr,misc]  # a concrete model field; a lazy string
            for name in revision_diff(old=product.listed_revision, new=open_revision)
        ]
    columns = [f["name"] for f in revision.dictionary]
    own = product_is_own(user=request.user, product=product)
    sample_url = reverse("portal:product-sample", args=[product.pk])
    if revision != product.listed_revision:
        sample_url += f"?revision={revision.number}"
    return render(
        request,
        "listings/product_detail.html",
        {
            "product": product,
            "revision": revision,
            "is_listed_revision": revision == product.listed_revision,
            "own": own,
            "plans": _plans(request, product),
            "dictionary": _dictionary_rows(revision),
            "preview_columns": columns,
            "preview_rows": [[row.get(c, "") for c in columns] for row in revision.sample_preview],
            "sample_url": sample_url,
            "dataset": dataset_shown(revision=revision),
            "terms": _licence_terms(revision),
            "classification": _label(Classification, revision.effective_classification),
            "delivery_modes": [_label(DeliveryMode, m) for m in revision.delivery_modes],
            "sandbox_offered": DeliveryMode.SANDBOX in revision.delivery_modes,
            "origin_countries": _country_names(revision.origin_countries),
            "open_revision": open_revision,
            "can_object": can_object,
            "notice_changes": notice_changes,
            "objection_form": objection_form or (ObjectionForm() if can_object else None),
        },
        status=400 if objection_form is not None and objection_form.errors else 200,
    )


@login_required
@require_GET
def notices(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Products in public notice on the member's boards: what may still be objected to, and until when."""
    products = product_list_in_notice(user=request.user)
    return render(request, "listings/notices.html", {"products": products})


@login_required
@require_GET
def product_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product, revision = _displayed(request, pk)
    return _product_page(request, product, revision)


@never_cache
@login_required
@require_GET
def product_sample(request: AuthenticatedHttpRequest, pk: int) -> FileResponse:
    product, revision = _displayed(request, pk)
    return file_response(revision.sample, filename_stem=f"sample-{product.pk}-r{revision.number}")


@login_required
@require_POST
def product_object(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = product_get_for_user(user=request.user, pk=pk)
    revision = revision_for_display(user=request.user, product=product)
    form = ObjectionForm(request.POST)
    if form.is_valid():
        try:
            services.objection_lodge(product=product, actor=request.user, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Your objection is lodged. A listing reviewer will decide on it."))
        return redirect("portal:product", pk=product.pk)
    return _product_page(request, product, revision, objection_form=form)


# --- The provider's products ------------------------------------------------------------------------------


def _status(product: DataProduct) -> tuple[str, str]:
    """What a provider most needs to know: the listing status once listed, else where the revision is."""
    if product.listing_status != ListingStatus.UNLISTED:
        return product.listing_status, product.get_listing_status_display()
    history = getattr(product, "history", [])
    revision = (getattr(product, "open_revisions", None) or history or [None])[0]
    if revision is None:
        return product.listing_status, product.get_listing_status_display()
    return revision.status, revision.get_status_display()


@login_required
@require_GET
def my_products(request: AuthenticatedHttpRequest) -> HttpResponse:
    # The reviewer's notes may sit on an older revision (a rejection starts a new draft): fetch the light
    # columns of every revision in one query rather than one per product.
    history = Revision.objects.only(
        "id", "product_id", "number", "status", "title_en", "title_zh", "review_notes", "decided_at"
    ).order_by("-number")
    products = product_list_for_provider(user=request.user).prefetch_related(
        Prefetch("revisions", queryset=history, to_attr="history")
    )
    rows = []
    for product in products:
        latest = product.history[0] if product.history else None
        noted = next((r for r in product.history if r.review_notes), None)
        status, status_label = _status(product)
        shown = product.listed_revision or latest
        rows.append(
            {
                "product": product,
                "title": shown.title if shown else "",
                "status": status,
                "status_label": status_label,
                "latest": latest,
                "notes": noted,
            }
        )
    return render(
        request,
        "listings/my_products.html",
        {"rows": rows, "can_create": services.product_may_create(request.user)},
    )


def _own_product(request: AuthenticatedHttpRequest, pk: int) -> DataProduct:
    """One of the user's firm's products; anyone else's is not found."""
    return product_get_own(user=request.user, pk=pk)


def _service_error_to_message(request: AuthenticatedHttpRequest, exc: ApplicationError | ValidationError) -> None:
    if isinstance(exc, NotAllowed):
        raise PermissionDenied(exc.message)
    add_service_messages(request, exc)


@login_required
@require_http_methods(["GET", "POST"])
def product_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not services.product_may_create(request.user):
        raise PermissionDenied(_("Only administrators and traders of a verified provider firm create products."))
    boards = Board.objects.filter(id__in=board_access(user=request.user).tradable).order_by("id")
    data = request.POST if request.method == "POST" else None
    form = ProductCreateForm(data, boards=boards, categories=category_list(), initial={"territories": "worldwide"})
    formset = dictionary_formset(data, extra=5)
    if request.method == "POST":
        form_ok = form.is_valid()
        formset_ok = formset.is_valid()
        if form_ok and formset_ok:
            content = form.content(formset.rows())
            try:
                product = services.product_create(actor=request.user, board=form.cleaned_data["board"], **content)
            except NotAllowed as exc:
                raise PermissionDenied(exc.message) from None
            except (ValidationError, ApplicationError) as exc:
                form.add_service_errors(exc, formset)
            else:
                messages.success(
                    request, _("The draft is saved. Upload a sample and add a price plan, then submit it.")
                )
                return redirect("portal:my-product-edit", pk=product.pk)
    return render(
        request,
        "listings/product_form.html",
        {"form": form, "formset": formset, "boards": boards},
        status=400 if request.method == "POST" else 200,
    )


def _manage_page(
    request: AuthenticatedHttpRequest,
    product: DataProduct,
    *,
    form: ProductContentForm | None = None,
    formset: Any = None,
    sample_form: SampleUploadForm | None = None,
    dataset_form: DatasetUploadForm | None = None,
    plan_form: PricePlanForm | None = None,
    delist_form: ReasonForm | None = None,
    status: int = 200,
) -> HttpResponse:
    revision = services.open_revision(product)
    delisted = product.listing_status == ListingStatus.DELISTED
    draft = revision if revision is not None and revision.is_editable and not delisted else None
    can_edit = services.can_edit_product(request.user, product)
    if draft is not None and can_edit:
        if form is None:
            form = ProductContentForm(initial=ProductContentForm.initial_from(draft), categories=category_list())
            formset = dictionary_formset(initial=draft.dictionary)
        sample_form = sample_form or SampleUploadForm(max_bytes=settings.LISTING_SAMPLE_MAX_BYTES)
        dataset_form = dataset_form or DatasetUploadForm()
    else:
        form = formset = sample_form = dataset_form = None
    if can_edit and not delisted:
        plan_form = plan_form or PricePlanForm(
            currencies=product.board.settlement_currencies,
            initial={"currency": product.board.settlement_currencies[0]},
        )
    else:
        plan_form = None
    can_delist = services.product_may_delist(request.user, product) and product.listing_status in (
        ListingStatus.LISTED,
        ListingStatus.SUSPENDED,
    )
    shown = revision or product.listed_revision or revision_list(product=product).first()
    dataset = dataset_of(revision=shown) if shown is not None else None
    return render(
        request,
        "listings/product_manage.html",
        {
            "product": product,
            "revision": shown,
            "open_revision": revision,
            "draft": draft,
            "can_edit": can_edit,
            "form": form,
            "formset": formset,
            "sample_form": sample_form,
            "dataset_form": dataset_form,
            "dataset": dataset,
            "dataset_max_mib": settings.LISTING_DATASET_MAX_BYTES // (1024 * 1024),
            "plan_form": plan_form,
            "plans": _plans(request, product),
            "can_submit": can_edit and draft is not None,
            "can_withdraw": can_edit and revision is not None and revision.status == Revision.Status.SUBMITTED,
            "can_start_revision": can_edit and revision is None and not delisted,
            "delist_form": (delist_form or ReasonForm()) if can_delist else None,
            "max_kib": settings.LISTING_SAMPLE_MAX_BYTES // 1024,
        },
        status=status,
    )


def _delisted(request: AuthenticatedHttpRequest, product: DataProduct) -> HttpResponse | None:
    """A friendly refusal before the forms: delisting withdrew any open revision, so the services would refuse
    these steps anyway (with a less specific message)."""
    if product.listing_status != ListingStatus.DELISTED:
        return None
    messages.error(request, _("A delisted product cannot be changed."))
    return redirect("portal:my-product-edit", pk=product.pk)


def _require_editor(request: AuthenticatedHttpRequest, product: DataProduct) -> None:
    if not services.can_edit_product(request.user, product):
        raise PermissionDenied(_("Only the provider's administrators and traders may change this product."))


@login_required
@require_http_methods(["GET", "POST"])
def product_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    if request.method == "GET":
        return _manage_page(request, product)
    _require_editor(request, product)
    if refused := _delisted(request, product):
        return refused
    form = ProductContentForm(request.POST, categories=category_list())
    formset = dictionary_formset(request.POST)
    form_ok = form.is_valid()
    formset_ok = formset.is_valid()
    if form_ok and formset_ok:
        try:
            services.revision_update(product=product, actor=request.user, **form.content(formset.rows()))
        except ValidationError as exc:
            form.add_service_errors(exc, formset)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("portal:my-product-edit", pk=product.pk)
        else:
            messages.success(request, _("The draft is saved."))
            return redirect("portal:my-product-edit", pk=product.pk)
    return _manage_page(request, product, form=form, formset=formset, status=400)


@login_required
@require_POST
def product_sample_upload(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    _require_editor(request, product)
    if refused := _delisted(request, product):
        return refused
    limit = settings.LISTING_SAMPLE_MAX_BYTES
    form = SampleUploadForm(request.POST, request.FILES, max_bytes=limit)
    if form.is_valid():
        upload = form.cleaned_data["sample"]
        # One byte past the limit is enough to know the file is too big; never read a huge upload whole.
        content = upload.read(limit + 1)
        saved = _manage_save(
            request,
            product,
            form,
            lambda: services.revision_set_sample(
                product=product, actor=request.user, name=upload.name, content=content
            ),
            _("The sample is checked against the dictionary and saved."),
            default_field="sample",
        )
        if saved is not None:
            return saved
    return _manage_page(request, product, sample_form=form, status=400)


@login_required
@require_POST
def product_dataset_upload(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    _require_editor(request, product)
    if refused := _delisted(request, product):
        return refused
    form = DatasetUploadForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["dataset"]
        saved = _manage_save(
            request,
            product,
            form,
            lambda: services.dataset_upload(product=product, actor=request.user, name=upload.name, file=upload),
            _("The dataset is uploaded and is checked against the dictionary; this page shows how far."),
            default_field="dataset",
            anchor="dataset",
        )
        if saved is not None:
            return saved
    return _manage_page(request, product, dataset_form=form, status=400)


def _manage_save(
    request: AuthenticatedHttpRequest,
    product: DataProduct,
    form: forms.Form,
    save: Callable[[], Any],
    success: str,
    default_field: str | None = None,
    anchor: str = "",
) -> HttpResponse | None:
    """Save one of the product page's forms through its service: back to the page with `success` said, or None
    with the service's refusal put on the form (a NotAllowed is a 403)."""
    try:
        save()
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except (ValidationError, ApplicationError) as exc:
        add_service_errors(form, exc, default_field=default_field)
        return None
    messages.success(request, success)
    url = reverse("portal:my-product-edit", args=[product.pk])
    return redirect(f"{url}#{anchor}" if anchor else url)


@login_required
@require_POST
def plan_create(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    _require_editor(request, product)
    form = PricePlanForm(request.POST, currencies=product.board.settlement_currencies)
    if form.is_valid():
        saved = _manage_save(
            request,
            product,
            form,
            lambda: services.plan_create(product=product, actor=request.user, **form.cleaned_data),
            _("The price plan is added."),
        )
        if saved is not None:
            return saved
    return _manage_page(request, product, plan_form=form, status=400)


@login_required
@require_POST
def plan_retire(request: AuthenticatedHttpRequest, pk: int, plan_pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    plan = get_object_or_404(PricePlan.objects.select_related("product__board"), pk=plan_pk, product=product)
    try:
        services.plan_retire(plan=plan, actor=request.user)
    except (ApplicationError, ValidationError) as exc:
        _service_error_to_message(request, exc)
    else:
        messages.success(request, _("The price plan is retired: buyers no longer see it."))
    return redirect("portal:my-product-edit", pk=product.pk)


def _transition(request: AuthenticatedHttpRequest, pk: int, action: Any, success: str) -> HttpResponse:
    product = _own_product(request, pk)
    if action is services.product_submit and (refused := _delisted(request, product)):
        return refused
    try:
        action(product=product, actor=request.user)
    except (ApplicationError, ValidationError) as exc:
        _service_error_to_message(request, exc)
    else:
        messages.success(request, success)
    return redirect("portal:my-product-edit", pk=product.pk)


@login_required
@require_POST
def product_submit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _transition(
        request, pk, services.product_submit, _("Submitted for registration review. The revision is now frozen.")
    )


@login_required
@require_POST
def product_withdraw(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _transition(
        request, pk, services.product_withdraw, _("The submission is withdrawn. Start a new revision to change it.")
    )


@login_required
@require_POST
def revision_new(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _transition(
        request,
        pk,
        services.revision_create_draft,
        _("A new draft revision is started. What is listed stays on sale until the new revision is listed."),
    )


@login_required
@require_POST
def product_delist(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        if not services.product_may_delist(request.user, product):
            raise PermissionDenied(_("Only the provider's administrators may delist a product."))
        return _manage_page(request, product, delist_form=form, status=400)
    try:
        services.product_delist(product=product, actor=request.user, reason=form.cleaned_data["reason"])
    except (ApplicationError, ValidationError) as exc:
        _service_error_to_message(request, exc)
    else:
        messages.success(request, _("The product is delisted. It leaves the catalogue for good."))
    return redirect("portal:my-product-edit", pk=product.pk)


@login_required
@require_GET
def product_revisions(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    product = _own_product(request, pk)
    revisions = list(revision_list(product=product))
    history = []
    # Newest first; each revision is compared with the one before it (the first with nothing).
    for index, revision in enumerate(revisions):
        previous = revisions[index + 1] if index + 1 < len(revisions) else None
        changes = revision_diff(old=previous, new=revision)
        changes.pop("dictionary", None)  # shown field by field below
        history.append(
            {
                "revision": revision,
                "previous": previous,
                "changes": [
                    {
                        "label": capfirst(Revision._meta.get_field(name).verbose_name),  # type: ignore[union-attr]  # a concrete model field
                        "old": _display_value(name, old),
                        "new": _display_value(name, new),
                    }
                    for name, (old, new) in changes.items()
                ],
                "dictionary": dictionary_diff(old=previous, new=revision),
            }
        )
    return render(request, "listings/product_revisions.html", {"product": product, "history": history})


def _display_value(name: str, value: Any) -> str:
    if value in (None, "", [], {}):
        return "—"
    if name == "sample":
        return _("a file")  # the storage path means nothing to anyone reading the page
    if name == "licence_terms" and isinstance(value, dict):
        yes, no = _("yes"), _("no")
        # Labels outside the f-strings: makemessages does not look inside f-string expressions.
        purposes, territories, duration = _("purposes"), _("territories"), _("duration")
        no_end, onward, resale = _("no end"), _("onward transfer"), _("resale")
        parts = [
            f"{purposes}: {'; '.join(value.get('purposes', []))}",
            f"{territories}: {', '.join(value.get('territories', []))}",
            f"{duration}: {value.get('duration_months') or no_end}",
            f"{onward}: {yes if value.get('onward_transfer') else no}",
            f"{resale}: {yes if value.get('resale') else no}",
        ]
        return " · ".join(parts)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    text = str(value)
    return text if len(text) <= 300 else text[:300] + "…"
