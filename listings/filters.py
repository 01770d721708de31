"""Catalogue filters. They only narrow what listings.selectors already decided the user may see."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import django_filters
from django.core.validators import MaxValueValidator
from django.db import connection
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from exchange.models import Board
from exchange.money import CURRENCIES

from .models import Classification, DataProduct, DeliveryMode, PricePlan
from .search import search_products
from .selectors import annotate_price_from, plans_visible_q

# The highest price a filter takes: the most the price column holds (a bound higher than any plan's price
# simply matches every plan, as the API's `price_max` pattern of 12 whole digits allows).
MAX_FILTER_PRICE = Decimal("999999999999.99")


class PriceFilter(django_filters.NumberFilter):
    """django-filter's NumberFilter caps values with a float (1e50); money is compared as Decimal only."""

    def get_max_validator(self) -> MaxValueValidator:
        return MaxValueValidator(MAX_FILTER_PRICE)


SORTS = {
    "relevance": _("Relevance"),
    "newest": _("Newest"),
    "price_asc": _("Price, lowest first"),
    "price_desc": _("Price, highest first"),
}


class CatalogueFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label=_("Search"), method="filter_q", max_length=200)
    board = django_filters.ChoiceFilter(label=_("Board"), field_name="board__code", choices=Board.Code.choices)
    category = django_filters.CharFilter(label=_("Category"), field_name="listed_revision__category__code")
    classification = django_filters.ChoiceFilter(
        label=_("Classification"),
        field_name="listed_revision__confirmed_classification",
        choices=Classification.choices,
    )
    delivery_mode = django_filters.ChoiceFilter(
        label=_("Delivery"), choices=DeliveryMode.choices, method="filter_delivery"
    )
    currency = django_filters.ChoiceFilter(
        label=_("Currency"), choices=[(c, c) for c in CURRENCIES], method="filter_price"
    )
    price_min = PriceFilter(
        label=_("Price from"), method="filter_price", min_value=Decimal(0), max_digits=14, decimal_places=2
    )
    price_max = PriceFilter(
        label=_("Price to"), method="filter_price", min_value=Decimal(0), max_digits=14, decimal_places=2
    )
    provider_country = django_filters.ChoiceFilter(
        label=_("Provider's country"), field_name="provider__country", choices=list(countries)
    )
    contains_personal_info = django_filters.TypedChoiceFilter(
        label=_("Contains personal information"),
        field_name="listed_revision__contains_personal_info",
        choices=[("true", _("Yes")), ("false", _("No"))],
        coerce=lambda value: value == "true",
    )
    sort = django_filters.ChoiceFilter(
        label=_("Sort"), choices=list(SORTS.items()), method="filter_sort", empty_label=None
    )

    class Meta:
        model = DataProduct
        fields: list[str] = []

    def __init__(self, *args: Any, firm_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.firm_id = firm_id

    def filter_q(self, queryset: QuerySet[DataProduct], name: str, value: str) -> QuerySet[DataProduct]:
        return search_products(queryset, value) if value.strip() else queryset

    def filter_delivery(self, queryset: QuerySet[DataProduct], name: str, value: str) -> QuerySet[DataProduct]:
        if connection.features.supports_json_field_contains:
            return queryset.filter(listed_revision__delivery_modes__contains=[value])
        # SQLite: the JSON list is stored as text like ["file", "api"]; the quoted code is unambiguous.
        return queryset.filter(listed_revision__delivery_modes__icontains=f'"{value}"')

    def filter_price(self, queryset: QuerySet[DataProduct], name: str, value: Any) -> QuerySet[DataProduct]:
        # Applied once for the three price fields together (see `filter_queryset`).
        return queryset

    def filter_sort(self, queryset: QuerySet[DataProduct], name: str, value: str) -> QuerySet[DataProduct]:
        return queryset  # applied last, in filter_queryset, once the search has annotated its rank

    def filter_queryset(self, queryset: QuerySet[DataProduct]) -> QuerySet[DataProduct]:
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        currency, low, high = data.get("currency"), data.get("price_min"), data.get("price_max")
        if currency or low is not None or high is not None:
            plans = PricePlan.objects.filter(plans_visible_q(self.firm_id), product=OuterRef("pk"))
            if currency:
                plans = plans.filter(currency=currency)
            if low is not None:
                plans = plans.filter(amount__gte=low)
            if high is not None:
                plans = plans.filter(amount__lte=high)
            queryset = queryset.filter(Exists(plans))
        sort = data.get("sort") or ("relevance" if data.get("q") else "newest")
        if sort == "relevance" and "rank" in queryset.query.annotations:
            return queryset.order_by("-rank", "-listed_at", "-pk")
        if sort in ("price_asc", "price_desc"):
            queryset = annotate_price_from(queryset, firm_id=self.firm_id, currency=currency)
            price = F("price_from")
            order = price.asc(nulls_last=True) if sort == "price_asc" else price.desc(nulls_last=True)
            return queryset.order_by(order, "-pk")
        # Newest first by first listing: stable for a product however often it is revised (the API's cursor
        # pages on the same key).
        return queryset.order_by("-listed_at", "-pk")
