"""The compliance gate's business gauges for /metrics (exchange.metrics)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from .models import ComplianceCase, Filing


def compliance_metrics() -> Iterable[GaugeMetricFamily]:
    cases = GaugeMetricFamily(
        "exchange_compliance_cases_open", "Open compliance cases by kind (held listings and trades).", labels=["kind"]
    )
    for row in ComplianceCase.objects.filter(status="open").values("kind").annotate(n=Count("pk")).order_by():
        cases.add_metric([row["kind"]], row["n"])
    yield cases
    filings = GaugeMetricFamily("exchange_filings", "Filings by kind and status.", labels=["kind", "status"])
    for row in Filing.objects.values("kind", "status").annotate(n=Count("pk")).order_by():
        filings.add_metric([row["kind"], row["status"]], row["n"])
    yield filings
