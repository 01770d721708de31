"""Reads of the catalogue. Visibility is decided here, once, for every door: the portal, the API, exports.

- Buyers see listed products on the boards their firm is admitted to (`board_id__in`, computed once per
  request from a handful of rows), with the public plans and the private offers made to their firm.
- A provider's members see all of their firm's products, in every state.
- Listing reviewers see the products of the boards their role covers, in every state.
- Everyone else, anonymous visitors included, sees nothing: a product outside what a user may see is
  "not found", never "forbidden", so that its existence is not revealed.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from exchange.selectors import board_access, user_firm_id

from .models import Category, DataProduct, Dataset, DeliveryMode, ListingStatus, PricePlan, Revision
from .permissions import is_reviewer


def plans_visible_q(firm_id: int | None) -> Q:
    """Active plans anyone on the board sees, plus the private offers made to this firm."""
    visible = Q(buyer_firm__isnull=True)
    if firm_id is not None:
        visible |= Q(buyer_firm_id=firm_id)
    return Q(is_active=True) & visible


def _with_display(queryset: QuerySet[DataProduct], firm_id: int | None) -> QuerySet[DataProduct]:
    return queryset.select_related(
        "board", "provider", "listed_revision", "listed_revision__category"
    ).prefetch_related(
        Prefetch(
            "plans",
            queryset=PricePlan.objects.filter(plans_visible_q(firm_id)).order_by("amount", "id"),
            to_attr="visible_plans",
        )
    )


# What a catalogue list never shows: left in the table, so that a search matching thousands of products
# does not carry their dictionaries and licences through the join and the sort.
LIST_DEFERRED = tuple(
    f"listed_revision__{name}"
    for name in (
        "dictionary", "description_en", "description_zh", "licence_en", "licence_zh", "licence_terms",
        "sample_preview", "search_text", "search_vector",
    )
)  # fmt: skip


def product_list_catalogue(*, user: Any) -> QuerySet[DataProduct]:
    """Listed products the user may see, with their listed revision, provider, board and visible plans."""
    visible = board_access(user=user).visible
    firm_id = user_firm_id(user)
    queryset = DataProduct.objects.filter(listing_status=ListingStatus.LISTED, board_id__in=visible)
    return _with_display(queryset, firm_id).defer(*LIST_DEFERRED)


def product_list_for_provider(*, user: Any) -> QuerySet[DataProduct]:
    """Every product of the user's firm, in every state (none for non-members)."""
    firm_id = user_firm_id(user)
    if firm_id is None:
        return DataProduct.objects.none()
    return (
        _with_display(DataProduct.objects.filter(provider_id=firm_id), firm_id)
        .prefetch_related(
            Prefetch(
                "revisions",
                queryset=Revision.objects.filter(status__in=Revision.OPEN).select_related("category"),
                to_attr="open_revisions",
            )
        )
        .order_by("-updated_at", "-id")
    )


def product_list_for_review(*, user: Any) -> QuerySet[DataProduct]:
    """Every product on the boards a reviewer covers."""
    if not is_reviewer(user):
        return DataProduct.objects.none()
    return _with_display(DataProduct.objects.filter(board_id__in=board_access(user=user).visible), None)


def product_get_for_user(*, user: Any, pk: Any) -> DataProduct:
    """The product if the user may see it at all (catalogue, own firm's, or to review), else 404."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    firm_id = user_firm_id(user)
    access = board_access(user=user)
    condition = Q(listing_status=ListingStatus.LISTED, board_id__in=access.visible)
    if firm_id is not None:
        condition |= Q(provider_id=firm_id)
    if is_reviewer(user):
        condition |= Q(board_id__in=access.visible)
    # A product in public notice is shown to the board's members so that they can object; that is the
    # point of the notice, and it holds for a first listing as much as for a new revision.
    condition |= Q(board_id__in=access.visible) & Exists(  # type: ignore[assignment]  # Q & Exists is a Q
        Revision.objects.filter(product=OuterRef("pk"), status__in=PUBLIC_NOTICE_STATES)
    )
    # With the listed revision's dataset: what the product page shows buyers of it, in the same query.
    product = (
        _with_display(DataProduct.objects.filter(condition), firm_id)
        .select_related("listed_revision__dataset")
        .filter(pk=pk)
        .first()
    )
    if product is None:
        raise Http404
    return product


PUBLIC_NOTICE_STATES = (Revision.Status.IN_NOTICE, Revision.Status.OBJECTED)


def product_list_in_notice(*, user: Any) -> QuerySet[DataProduct]:
    """Products with a revision in public notice on the boards the user sees: what members may object to."""
    visible = board_access(user=user).visible
    in_notice = Revision.objects.filter(status__in=PUBLIC_NOTICE_STATES).select_related("category")
    return (
        _with_display(DataProduct.objects.filter(board_id__in=visible), user_firm_id(user))
        .filter(revisions__status__in=PUBLIC_NOTICE_STATES)
        .prefetch_related(Prefetch("revisions", queryset=in_notice, to_attr="notice_revisions"))
        .order_by("-id")
        .distinct()
    )


def product_is_own(*, user: Any, product: DataProduct) -> bool:
    return user_firm_id(user) == product.provider_id


def revision_for_display(*, user: Any, product: DataProduct, number: int | None = None) -> Revision:
    """The revision a user reads: the listed one for buyers; providers and reviewers may ask for any."""
    privileged = product_is_own(user=user, product=product) or is_reviewer(user)
    in_notice = product.revisions.select_related("category").filter(status__in=PUBLIC_NOTICE_STATES).first()
    if number is not None:
        if privileged:
            revision = product.revisions.select_related("category").filter(number=number).first()
        else:
            # Members may read the revision on sale (not a suspended one) and the one in public notice.
            on_sale = product.listed_revision if product.listing_status == ListingStatus.LISTED else None
            revision = next((r for r in (on_sale, in_notice) if r is not None and r.number == number), None)
        if revision is None:
            raise Http404
        return revision
    if product.listed_revision is not None and product.listing_status == ListingStatus.LISTED:
        return product.listed_revision
    if in_notice is not None and product.board_id in board_access(user=user).visible:
        return in_notice
    if product.listed_revision is not None and privileged:
        return product.listed_revision
    if privileged:
        latest = product.revisions.select_related("category").order_by("-number").first()
        if latest is not None:
            return latest
    raise Http404


def revision_draft(*, product: DataProduct) -> Revision | None:
    """The product's draft, if its revision in progress is one: what an edit would change."""
    return product.revisions.filter(status=Revision.Status.DRAFT).select_related("category").first()


def dataset_of(*, revision: Revision) -> Dataset | None:
    """The revision's dataset, whatever its state: for its provider (and reviewers)."""
    return Dataset.objects.filter(revision=revision).first()


def dataset_shown(*, revision: Revision) -> Dataset | None:
    """What every reader of the revision sees of its data: the dataset once checked valid (no query when the
    revision came with it, as product_get_for_user's listed revision does)."""
    try:
        dataset = revision.dataset
    except Dataset.DoesNotExist:
        return None
    return dataset if dataset.is_valid else None


def revision_list(*, product: DataProduct) -> QuerySet[Revision]:
    return product.revisions.select_related("category", "reviewer").order_by("-number")


def revision_diff(*, old: Revision | None, new: Revision) -> dict[str, tuple[Any, Any]]:
    """Field -> (old, new) for every content field that differs (all of them against nothing)."""
    before = old.content() if old is not None else {}
    after = new.content()
    return {name: (before.get(name), value) for name, value in after.items() if before.get(name) != value}


def dictionary_diff(*, old: Revision | None, new: Revision) -> dict[str, list[Any]]:
    """The data dictionary's fields added, removed and changed between two revisions."""
    before = {f["name"]: f for f in (old.dictionary if old else [])}
    after = {f["name"]: f for f in new.dictionary}
    return {
        "added": [after[n] for n in after if n not in before],
        "removed": [before[n] for n in before if n not in after],
        "changed": [(before[n], after[n]) for n in after if n in before and before[n] != after[n]],
    }


def category_list() -> QuerySet[Category]:
    return Category.objects.filter(is_active=True).order_by("position", "code")


def plans_for_user(*, user: Any, product: DataProduct) -> list[PricePlan]:
    """The provider sees all its plans, retired and private ones included; others what they may buy."""
    firm_id = user_firm_id(user)
    if product_is_own(user=user, product=product):
        return list(product.plans.select_related("buyer_firm").order_by("-is_active", "amount", "id"))
    if hasattr(product, "visible_plans"):  # prefetched for this user by the selectors above
        return list(product.visible_plans)
    return list(product.plans.filter(plans_visible_q(firm_id)).order_by("amount", "id"))


def product_get_own(*, user: Any, pk: Any) -> DataProduct:
    """A product of the user's own firm (any state), else 404: the door for providers' writes."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    product = product_list_for_provider(user=user).filter(pk=pk).first()
    if product is None:
        raise Http404
    return product


# --- Facets ------------------------------------------------------------------------------------------

FACET_FIELDS = {
    "board": "board__code",
    "category": "listed_revision__category__code",
    "classification": "listed_revision__confirmed_classification",
    "provider_country": "provider__country",
    "contains_personal_info": "listed_revision__contains_personal_info",
}


def catalogue_facets(*, queryset: QuerySet[DataProduct], firm_id: int | None) -> dict[str, dict[str, int]]:
    """Counts per facet value over an already filtered catalogue queryset.

    Single-valued facets are grouped in SQL; the delivery modes (a JSON list) and currencies (plans) are
    counted with one conditional aggregate each, so the whole lot costs a fixed number of queries.
    """
    base = queryset.order_by().values("pk")
    facets: dict[str, dict[str, int]] = {}
    for facet, path in FACET_FIELDS.items():
        rows = DataProduct.objects.filter(pk__in=base).values_list(path).annotate(n=Count("pk")).order_by(path)
        facets[facet] = {str(value).lower() if isinstance(value, bool) else str(value): n for value, n in rows}
    plan_exists = {
        code: Exists(PricePlan.objects.filter(plans_visible_q(firm_id), product=OuterRef("pk"), currency=code))
        for code in ("CNY", "USD")
    }
    delivery_counts = (
        {
            f"delivery_{mode}": Count("pk", filter=Q(listed_revision__delivery_modes__contains=[mode]))
            for mode in DeliveryMode.values
        }
        if _json_contains_supported()
        else {}
    )
    counts = DataProduct.objects.filter(pk__in=base).aggregate(
        **delivery_counts,
        **{f"currency_{code}": Count("pk", filter=condition) for code, condition in plan_exists.items()},
    )
    if delivery_counts:
        facets["delivery_mode"] = {mode: counts[f"delivery_{mode}"] for mode in DeliveryMode.values}
    else:
        facets["delivery_mode"] = _delivery_counts_in_python(base)
    facets["currency"] = {code: counts[f"currency_{code}"] for code in plan_exists}
    return facets


def _json_contains_supported() -> bool:
    return connection.features.supports_json_field_contains


def _delivery_counts_in_python(base: QuerySet[Any]) -> dict[str, int]:
    # SQLite has no JSON containment; the embedded set-up counts the (short) lists here instead.
    counts = dict.fromkeys(DeliveryMode.values, 0)
    for modes in DataProduct.objects.filter(pk__in=base).values_list("listed_revision__delivery_modes", flat=True):
        for mode in modes or []:
            if mode in counts:
                counts[mode] += 1
    return counts


def annotate_price_from(
    queryset: QuerySet[DataProduct], *, firm_id: int | None, currency: str | None
) -> QuerySet[DataProduct]:
    """The lowest visible plan price (in one currency if given), for sorting by price."""
    condition = Q(plans__is_active=True) & (Q(plans__buyer_firm__isnull=True) | Q(plans__buyer_firm_id=firm_id))
    if currency:
        condition &= Q(plans__currency=currency)
    return queryset.annotate(price_from=Min("plans__amount", filter=condition))
