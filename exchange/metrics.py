"""Prometheus metrics: the request metrics of django-prometheus, and the exchange's business gauges.

Business gauges are computed at scrape time from the database (a few grouped counts), so every web process
answers the same numbers and nothing has to be kept in step. Apps add theirs with `register_collector` in
their AppConfig.ready(), the way they add pre-listing and admission checks: the core imports no app.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable

import prometheus_client
from django.conf import settings
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import Board, BoardGroupObjectPermission, MemberFirm, OutboxEvent

MetricsFunction = Callable[[], Iterable[GaugeMetricFamily]]

_collectors: dict[str, MetricsFunction] = {}


def register_collector(name: str, collect: MetricsFunction) -> None:
    """Register (or replace, by name) a function yielding metric families, called at every scrape."""
    _collectors[name] = collect


class BusinessCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        for collect in _collectors.values():
            yield from collect()


def core_metrics() -> Iterable[GaugeMetricFamily]:
    firms = GaugeMetricFamily("exchange_member_firms", "Member firms by KYC status.", labels=["kyc_status"])
    for row in MemberFirm.objects.values("kyc_status").annotate(n=Count("pk")).order_by():
        firms.add_metric([row["kyc_status"]], row["n"])
    yield firms
    admitted = GaugeMetricFamily("exchange_admitted_firms", "Firms admitted to each board.", labels=["board"])
    codes = dict(Board.objects.values_list("pk", "code"))
    rows = (
        BoardGroupObjectPermission.objects.filter(permission__codename="trade_on_board")
        .values("content_object_id")
        .annotate(n=Count("group_id", distinct=True))
        .order_by()
    )
    for row in rows:
        admitted.add_metric([codes.get(row["content_object_id"], "?")], row["n"])
    yield admitted
    # A relay that stopped, or a subscriber failing for good, shows here first: the pending events pile up and the
    # oldest grows older than the relay's minute.
    pending = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(n=Count("pk"), oldest=Min("created_at"))
    yield GaugeMetricFamily(
        "exchange_outbox_pending_events", "Outbox events some subscriber has not taken yet.", value=pending["n"]
    )
    oldest = pending["oldest"]
    yield GaugeMetricFamily(
        "exchange_outbox_oldest_pending_seconds",
        "Age of the oldest pending outbox event, in seconds (0 when none is pending).",
        value=(timezone.now() - oldest).total_seconds() if oldest else 0,
    )


register_collector("exchange", core_metrics)


_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_HOST")


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    if any(name in request.META for name in _PROXY_HEADERS):
        # Relayed by a proxy: REMOTE_ADDR is the proxy's own address (often 127.0.0.1), not the caller's.
        return False
    return request.META.get("REMOTE_ADDR", "") in settings.METRICS_ALLOWED_IPS


def metrics_view(request: HttpRequest) -> HttpResponse:
    """/metrics for Prometheus: 404 to anyone not allowed, so the endpoint's existence is not advertised."""
    if not _allowed(request):
        raise Http404
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    business = prometheus_client.CollectorRegistry()
    business.register(BusinessCollector())
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(business)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
