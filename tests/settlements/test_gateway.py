"""API delivery through its doors: the data credential (issued, shown once, rotated, revoked; who may), the data
gateway under /data/v1/ (the dictionary; rows with columns, filters of every operator and type, ordering, cursor
pages that give every row once, CSV; every refusal a 4xx in the one error shape, never a 5xx), the meter at its edge,
the first call delivering a released order, and the faces (API, portal, admin).

The expected rows are computed here in Python from the same generated CSV the dataset was made of, so that every
filter and ordering is checked against an independent reading of the data."""

from __future__ import annotations

import csv
import functools
import io
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from exchange.exceptions import ApplicationError, NotAllowed
from listings import services as listing_services
from listings.models import Dataset, Revision
from settlements.models import DataCredential, Order
from settlements.services import credentials
from tests.factories import MemberFirmFactory, admit, api_client_for, api_error, listed_product, login_as, member
from tests.factories import valid_dataset
from tests.settlements.factories import fund
from tests.settlements.test_orders import one_off, place

pytestmark = pytest.mark.django_db
D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")

DICTIONARY = [
    {"name": "code", "type": "string", "description": "A code", "unit": "", "personal": False, "sensitive": False},
    {"name": "qty", "type": "integer", "description": "Quantity", "unit": "t", "personal": False, "sensitive": False},
    {"name": "price", "type": "decimal", "description": "Price", "unit": "USD", "personal": False, "sensitive": False},
    {"name": "active", "type": "boolean", "description": "", "unit": "", "personal": False, "sensitive": False},
    {"name": "day", "type": "date", "description": "Day", "unit": "", "personal": False, "sensitive": False},
    {"name": "at", "type": "datetime", "description": "When", "unit": "", "personal": False, "sensitive": False},
    {"name": "country", "type": "country", "description": "", "unit": "", "personal": False, "sensitive": False},
    {"name": "ccy", "type": "currency", "description": "", "unit": "", "personal": False, "sensitive": False},
    # A field named like one of the gateway's parameters: filtered as `limit__eq`.
    {"name": "limit", "type": "integer", "description": "", "unit": "", "personal": False, "sensitive": False},
]
ROWS = 257
COUNTRIES = ["CN", "DE", "JP", "US", "SG"]


def _row(i: int) -> dict[str, Any]:
    return {
        "code": f"C{i % 7}" if i % 17 else None,  # an empty cell: null in the columnar copy
        "qty": None if i % 11 == 0 else i - 100,
        "price": None if i % 13 == 0 else D(i * 125) / 100,
        "active": i % 3 == 0,
        "day": date(2026, 1, 1) + timedelta(days=i % 40),
        "at": datetime(2026, 1, 1, 8, tzinfo=SHANGHAI) + timedelta(hours=i * 5),
        "country": COUNTRIES[i % 5],
        "ccy": "CNY" if i % 2 else "USD",
        "limit": i % 4,
    }


EXPECTED = [_row(i) for i in range(ROWS)]


def _csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f["name"] for f in DICTIONARY])
    for row in EXPECTED:
        writer.writerow(
            [
                row["code"] or "",
                "" if row["qty"] is None else row["qty"],
                "" if row["price"] is None else f"{row['price']:.2f}",
                "true" if row["active"] else "false",
                row["day"].isoformat(),
                row["at"].strftime("%Y-%m-%d %H:%M:%S"),  # no offset: the exchange's time (Asia/Shanghai)
                row["country"].lower() if row["country"] == "SG" else row["country"],
                row["ccy"],
                row["limit"],
            ]
        )
    return out.getvalue().encode()


def as_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def expected(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[dict[str, Any]]:
    names = columns or [f["name"] for f in DICTIONARY]
    return [{n: as_json(r[n]) for n in names} for r in rows]


def ordered(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """Python's reading of `order_by`: nulls last either way, ties in the dataset's order."""

    def compare(a: tuple[int, dict[str, Any]], b: tuple[int, dict[str, Any]]) -> int:
        for spec in fields:
            name, descending = spec.lstrip("-"), spec.startswith("-")
            x, y = a[1][name], b[1][name]
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1
            return (1 if x < y else -1) if descending else (-1 if x < y else 1)
        return -1 if a[0] < b[0] else 1

    return [r for _, r in sorted(enumerate(rows), key=functools.cmp_to_key(compare))]


# --- Fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def product(provider, reviewer):
    product = listed_product(provider, reviewer, title_en="Trade lines")
    revision = product.listed_revision
    Revision.objects.filter(pk=revision.pk).update(dictionary=DICTIONARY)
    Dataset.objects.filter(revision=revision).delete()
    revision.refresh_from_db()
    valid_dataset(revision, uploaded_by=provider, content=_csv())
    product.refresh_from_db()
    return product


@pytest.fixture
def order(product, international, clerk) -> Order:
    fund(international, clerk)
    order = place(international, product, one_off(product), delivery_mode="api")
    assert order.status == "released"
    return order


@pytest.fixture
def entitlement(order):
    return order.entitlement


@pytest.fixture
def key(entitlement, international) -> str:
    _credential, raw = credentials.credential_issue(entitlement=entitlement, actor=international)
    return raw


def gateway(raw_key: str | None):
    from rest_framework.test import APIClient

    client = APIClient()
    if raw_key:
        client.credentials(HTTP_AUTHORIZATION=f"Data-Key {raw_key}")
    return client


def rows_of(client, entitlement, **params) -> Any:
    query = urlencode(params, doseq=True)
    return client.get(f"/data/v1/{entitlement.pk}/rows" + (f"?{query}" if query else ""))


def ok(response) -> dict[str, Any]:
    assert response.status_code == 200, response.content[:2000]
    return response.json()


def walk(client, entitlement, **params) -> tuple[list[dict[str, Any]], int]:
    """Every page from the first, following `next`: the rows and the pages."""
    page = ok(rows_of(client, entitlement, **params))
    rows, pages = list(page["rows"]), 1
    while page["next"]:
        assert page["next"].startswith("http://testserver/data/v1/")
        page = ok(client.get(page["next"]))
        rows += page["rows"]
        pages += 1
    return rows, pages


# --- The gateway ---------------------------------------------------------------------------------------------------


class TestRows:
    def test_the_first_page_is_the_datasets_first_rows_in_its_order(self, entitlement, key):
        page = ok(rows_of(gateway(key), entitlement))
        assert page["fields"] == [f["name"] for f in DICTIONARY]
        assert page["revision"] == entitlement.revision.number
        assert page["rows"] == expected(EXPECTED[:100])
        assert page["next"]

    def test_the_dictionary(self, entitlement, key):
        body = ok(gateway(key).get(f"/data/v1/{entitlement.pk}/schema"))
        dataset = Dataset.objects.get(revision=entitlement.revision)
        assert [f["name"] for f in body["fields"]] == [f["name"] for f in DICTIONARY]
        assert body["fields"][2] == {
            "name": "price", "type": "decimal", "description": "Price", "unit": "USD", "personal": False,
            "sensitive": False,
        }  # fmt: skip
        assert body["dataset"] == {
            "revision": 1, "format": "csv", "rows": ROWS, "size": dataset.size, "sha256": dataset.sha256
        }  # fmt: skip
        assert body["entitlement"] == entitlement.pk and body["reference"] == entitlement.reference

    @pytest.mark.parametrize("limit", [1, 7, 100, 1000])
    def test_walking_the_pages_gives_every_row_once(self, entitlement, key, limit):
        rows, pages = walk(gateway(key), entitlement, limit=limit)
        assert rows == expected(EXPECTED)
        assert pages == -(-ROWS // limit)

    @pytest.mark.parametrize(
        "order_by",
        ["qty", "-qty", "price,code", "-price,-code", "code,-day", "active,country,-at", "-limit,qty", "ccy,limit,-price"],
    )
    def test_ordered_pages_with_ties_and_nulls_give_every_row_once_in_order(self, entitlement, key, order_by):
        rows, _pages = walk(gateway(key), entitlement, order_by=order_by, limit=9)
        assert rows == expected(ordered(EXPECTED, *order_by.split(",")))

    def test_columns(self, entitlement, key):
        page = ok(rows_of(gateway(key), entitlement, columns="price,code", order_by="-qty", limit=5))
        assert page["fields"] == ["price", "code"]
        assert page["rows"] == expected(ordered(EXPECTED, "-qty")[:5], ["price", "code"])
        # the ordering's field need not be answered, and the next page still follows it
        rows, _ = walk(gateway(key), entitlement, columns="code", order_by="-qty", limit=50)
        assert rows == expected(ordered(EXPECTED, "-qty"), ["code"])

    def test_csv_by_format_or_accept(self, entitlement, key):
        for response in (
            rows_of(gateway(key), entitlement, format="csv", limit=3, columns="code,qty,price,active,at"),
            gateway(key).get(
                f"/data/v1/{entitlement.pk}/rows?limit=3&columns=code,qty,price,active,at", HTTP_ACCEPT="text/csv"
            ),
        ):
            assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
            lines = response.content.decode().split("\r\n")
            assert lines[0] == "code,qty,price,active,at"
            assert lines[1] == ",,,true,2026-01-01T08:00:00+08:00"
            assert lines[2] == "C1,-99,1.25,false,2026-01-01T13:00:00+08:00"
            assert response["Link"].startswith("<http://testserver/data/v1/") and 'rel="next"' in response["Link"]
