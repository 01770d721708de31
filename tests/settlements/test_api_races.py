"""Orders through the API under real concurrency (PostgreSQL, real connections, a barrier): one idempotency key
sent by 20 clients at once places one order (T7); 10 different orders against one balance that covers 4 place
exactly 4 and never overdraw."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connections
from rest_framework.test import APIClient

from exchange import services as exchange_services
from exchange.idempotency import REPLAYED_HEADER
from settlements.models import Order
from settlements.services.ledger import account_for
from tests.factories import PricePlanFactory, api_error, listed_product
from tests.settlements.factories import fund

ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRES, reason="real concurrent connections need PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]


def _clients(user, count):
    _key, raw = exchange_services.api_key_create(
        firm=user.membership.firm, user=user, name="race", scopes=["read", "trade"], actor=user
    )
    clients = [APIClient() for _ in range(count)]
    for client in clients:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    # The suite's schema validator is built on the first answer, and building it is not thread-safe.
    assert clients[0].get("/api/v1/me").status_code == 200
    return clients


def _race(clients, send):
    barrier = threading.Barrier(len(clients))
    responses, errors = [], []

    def run(index, client):
        try:
            barrier.wait(timeout=10)
            responses.append(send(index, client))
        except Exception as exc:  # asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(responses) == len(clients)
    return responses


def test_twenty_clients_with_one_idempotency_key_place_one_order(provider, reviewer, international, clerk):
    product = listed_product(provider, reviewer)
    plan = PricePlanFactory(product=product, kind="one_off", period="", amount=Decimal("100.00"))
    fund(international, clerk, "10000.00")
    body = {"product": product.pk, "plan": plan.pk, "delivery_mode": "file", "intended_use": "Race."}

    responses = _race(
        _clients(international, 20),
        lambda _i, client: client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key"),
    )

    firsts = [r for r in responses if r.status_code == 201 and REPLAYED_HEADER not in r]
    assert len(firsts) == 1, [(r.status_code, r.content[:120]) for r in responses]
    for response in responses:
        if response.status_code == 201:
            assert response.content == firsts[0].content
        else:
            assert response.status_code == 409 and api_error(response)["code"] == "idempotency_key_in_flight"
    assert Order.objects.count() == 1
    assert account_for(firm=international.membership.firm, kind="cash", currency="CNY").balance == Decimal("9900.00")


def test_orders_against_one_balance_never_overdraw(provider, reviewer, international, clerk):
    product = listed_product(provider, reviewer)
    plan = PricePlanFactory(product=product, kind="one_off", period="", amount=Decimal("250.00"))
    fund(international, clerk, "1000.00")  # four orders' worth
    body = {"product": product.pk, "plan": plan.pk, "delivery_mode": "file", "intended_use": "Race."}

    responses = _race(
        _clients(international, 10),
        lambda i, client: client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=f"key-{i}"),
    )

    placed = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(placed) == 4, [(r.status_code, r.content[:120]) for r in responses]
    assert all(r.status_code == 422 and api_error(r)["code"] == "insufficient_funds" for r in refused)
    firm = international.membership.firm
    assert account_for(firm=firm, kind="cash", currency="CNY").balance == Decimal("0.00")
    assert account_for(firm=firm, kind="escrow", currency="CNY").balance == Decimal("1000.00")
