"""Baseline endpoints, served by the same server in the same run as the product's views."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

PAYLOAD = {"status": "ok", "service": "bench", "version": 1}


def plain(request: HttpRequest) -> JsonResponse:
    """The floor: Django's middleware and a `JsonResponse`, no authentication, no database."""
    return JsonResponse(PAYLOAD)


class DrfAnonymousApi(APIView):
    """The same DRF view with no authentication and no permission: DRF's own cost, without the API key's."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


class DrfTrivialApi(APIView):
    """A DRF view with the API's default authentication and permissions (an API key), and nothing else."""

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


def catalogue_values(request: HttpRequest) -> JsonResponse:
    """P2's baseline: the catalogue rows the API lists for the same filters and search, by `values()`.

    Same authentication (the API key), same visibility selector, same filters; no DRF and no serializer.
    """
    from exchange.authentication import ApiKeyAuthentication
    from exchange.selectors import user_membership
    from listings.filters import CatalogueFilter
    from listings.selectors import product_list_catalogue

    user, _ = ApiKeyAuthentication().authenticate(Request(request)) or (None, None)
    membership = user_membership(user)
    filtered = CatalogueFilter(
        request.GET, queryset=product_list_catalogue(user=user), firm_id=membership.firm_id if membership else None
    ).qs
    rows = list(
        filtered.values(
            "id", "listed_revision__title_en", "listed_revision__title_zh", "listed_revision__summary_en",
            "listed_revision__category__code", "board__code", "provider__legal_name_en", "certificate_number",
        )[:50]
    )  # fmt: skip
    return JsonResponse({"results": rows})


class BalanceSumApi(APIView):
    """The contrast to `GET /api/v1/balances` at 1,000,000 postings: the same answer (the firm's balances per
    currency, the API's serializer) computed by SUM over the firm's postings instead of read from the accounts'
    cached balances. What every balance read would cost without the cache."""

    def get(self, request: Request) -> Response:
        from collections import defaultdict
        from decimal import Decimal

        from exchange.selectors import user_firm
        from settlements.apis import BalanceListApi
        from settlements.models import Account, Posting
        from settlements.selectors import Balance, money_sum

        firm = user_firm(request.user)
        assert firm is not None
        sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: Decimal("0.00")))
        rows = (
            Posting.objects.filter(account__firm_id=firm.pk)
            .values("account__kind", "account__currency")
            .annotate(total=money_sum("amount"))
            .order_by()
        )
        for row in rows:
            # Postings are signed debit positive; a member's accounts are credit-normal.
            sums[row["account__currency"]][row["account__kind"]] = -row["total"]
        balances = [
            Balance(
                currency=currency,
                cash=kinds[Account.Kind.CASH],
                escrow=kinds[Account.Kind.ESCROW],
                payable=kinds[Account.Kind.PAYABLE],
                withdrawal=kinds[Account.Kind.WITHDRAWAL],
            )
            for currency, kinds in sorted(sums.items())
        ]
        return Response(BalanceListApi.OutputSerializer(balances, many=True).data)


def gateway_duckdb(request: HttpRequest) -> JsonResponse:
    """P11's baseline: the data gateway's page run directly by DuckDB, in the same server: the same SQL (built from
    the same parameters, on the same Parquet file, by the same per-thread connection) and the same JSON of its rows;
    no credential, no database, no meter, no DRF."""
    import json
    from pathlib import Path

    from settlements.gateway import query as gq

    global _GATEWAY
    if _GATEWAY is None:
        _GATEWAY = json.loads((Path(__file__).resolve().parent / "results" / "gateway.json").read_text())
    wanted = gq.parse(request.GET, _GATEWAY["dictionary"])
    page = gq.run(wanted, _GATEWAY["parquet"])
    names = [c.name for c in page.columns]
    rows = [{n: gq.to_json(v) for n, v in zip(names, row, strict=True)} for row in page.rows]
    return JsonResponse({"fields": names, "rows": rows, "next": None})


_GATEWAY: dict[str, Any] | None = None
