"""Public pages, the member portal's home, and the health check."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .models import Board
from .selectors import board_access, user_membership

log = logging.getLogger(__name__)


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    boards = Board.objects.order_by("id")
    return render(request, "exchange/landing.html", {"boards": boards})


@login_required
@require_GET
def portal_home(request: HttpRequest) -> HttpResponse:
    membership = user_membership(request.user)
    access = board_access(user=request.user)
    boards = [
        {"board": board, "can_trade": board.id in access.tradable}
        for board in Board.objects.filter(id__in=access.visible).order_by("id")
    ]
    return render(
        request,
        "exchange/portal_home.html",
        {"membership": membership, "firm": membership.firm if membership else None, "boards": boards},
    )


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    from .celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTHZ_BROKER_TIMEOUT)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    healthy = True
    probes = [("database", _check_database)]
    if settings.CELERY_BROKER_URL:
        probes.append(("broker", _check_broker))
    for name, probe in probes:
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # a health check reports every failure, whatever its kind
            log.warning("healthz check=%s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
            healthy = False
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
