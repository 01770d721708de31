"""The catalogue's business gauges for /metrics (exchange.metrics)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from .models import DataProduct, Revision


def listings_metrics() -> Iterable[GaugeMetricFamily]:
    products = GaugeMetricFamily(
        "exchange_products", "Data products by board and listing status.", labels=["board", "listing_status"]
    )
    for row in DataProduct.objects.values("board__code", "listing_status").annotate(n=Count("pk")).order_by():
        products.add_metric([row["board__code"], row["listing_status"]], row["n"])
    yield products
    queue = GaugeMetricFamily(
        "exchange_revisions_open", "Revisions in the review pipeline by status.", labels=["status"]
    )
    for row in Revision.objects.filter(status__in=Revision.OPEN).values("status").annotate(n=Count("pk")).order_by():
        queue.add_metric([row["status"]], row["n"])
    yield queue
