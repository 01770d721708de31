"""Helpers of the trading pages' tests: plans, the buy flow through the views, and reading pages."""

from __future__ import annotations

import html as entities
import re
from decimal import Decimal
from typing import Any

from listings.models import PricePlan
from settlements.models import Order
from tests.factories import PricePlanFactory

D = Decimal


def one_off(product, amount: str = "1000.00", currency: str = "CNY", **fields: Any) -> PricePlan:
    return PricePlanFactory(
        product=product, name_en="Once", name_zh="一次性", kind="one_off", period="", currency=currency,
        amount=D(amount), **fields,
    )  # fmt: skip


def buy_url(product, plan) -> str:
    return f"/portal/products/{product.pk}/buy/{plan.pk}"


def order_data(**overrides: Any) -> dict[str, str]:
    data = {"delivery_mode": "file", "intended_use": "Market sizing for our Singapore desk."}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def review(client, product, plan, **overrides: Any):
    """POST the order form: the review page (or the form again)."""
    return client.post(buy_url(product, plan), order_data(**overrides))


def confirm_data(response, **overrides: Any) -> dict[str, str]:
    """What the review page's confirmation form posts: its hidden fields, and the licence accepted."""
    form = response.context["confirm"]
    data = {name: form[name].value() for name in form.fields if name != "accept_licence"}
    data = {k: ("" if v is None else str(v)) for k, v in data.items()}
    data["accept_licence"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def confirm(client, product, plan, data: dict[str, str]):
    return client.post(buy_url(product, plan) + "/confirm", data)


def buy(client, product, plan, **overrides: Any) -> Order:
    """The whole buy flow through the views: review, confirm; the order placed."""
    page = review(client, product, plan, **overrides)
    assert page.status_code == 200, page.content.decode()[:2000]
    response = confirm(client, product, plan, confirm_data(page))
    assert response.status_code == 303, response.content.decode()[:2000]
    return Order.objects.get(pk=int(re.search(r"/orders/(\d+)/", response["Location"]).group(1)))


def main(response) -> str:
    """The text of the page's <main>, without the site's header and footer."""
    html = response.content.decode()
    body = html.split("<main>", 1)[-1].split("</main>", 1)[0]
    return entities.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip())
