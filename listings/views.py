"""Portal pages of the catalogue (first version: being built)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from exchange.selectors import user_membership

from .filters import CatalogueFilter
from .selectors import product_list_catalogue, product_list_for_provider


@login_required
@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    membership = user_membership(request.user)
    products = CatalogueFilter(
        request.GET,
        queryset=product_list_catalogue(user=request.user),
        firm_id=membership.firm_id if membership else None,
    ).qs
    return render(request, "listings/catalogue.html", {"products": products[:50]})


@login_required
@require_GET
def my_products(request: HttpRequest) -> HttpResponse:
    return render(request, "listings/my_products.html", {"products": product_list_for_provider(user=request.user)})
