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
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from exchange.exceptions import ApplicationError, NotAllowed
from listings import services as listing_services
from listings.models import Dataset, Revision
from settlements.models import DataCredential, Order
from settlements.services import credentials
from tests.factories import (
    MemberFirmFactory,
    admit,
    api_client_for,
    api_error,
    listed_product,
    login_as,
    member,
    valid_dataset,
)
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


@pytest.fixture(autouse=True)
def _datasets_forgotten():
    # The gateway keeps each entitlement's dataset for a few seconds per process; ids repeat from test to test.
    from settlements.gateway import views

    views._datasets.clear()
    yield
    views._datasets.clear()


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
        [
            "qty",
            "-qty",
            "price,code",
            "-price,-code",
            "code,-day",
            "active,country,-at",
            "-limit,qty",
            "ccy,limit,-price",
        ],
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


def where(test) -> list[dict[str, Any]]:
    return [r for r in EXPECTED if test(r)]


AT = datetime(2026, 1, 20, 8, tzinfo=SHANGHAI)
FILTERS = [
    # (parameters, Python's reading of them)
    ({"code": "C3"}, lambda r: r["code"] == "C3"),
    ({"code__in": "C1,C2"}, lambda r: r["code"] in ("C1", "C2")),
    ({"code__gte": "C5"}, lambda r: r["code"] is not None and r["code"] >= "C5"),
    ({"code__isnull": "true"}, lambda r: r["code"] is None),
    ({"qty": "-7"}, lambda r: r["qty"] == -7),
    ({"qty__gt": "100"}, lambda r: r["qty"] is not None and r["qty"] > 100),
    ({"qty__gte": "100", "qty__lt": "120"}, lambda r: r["qty"] is not None and 100 <= r["qty"] < 120),
    ({"qty__lte": "-95"}, lambda r: r["qty"] is not None and r["qty"] <= -95),
    ({"qty__in": ["1", "2,3", "+4"]}, lambda r: r["qty"] in (1, 2, 3, 4)),
    ({"qty__isnull": "false", "qty__lt": "-90"}, lambda r: r["qty"] is not None and r["qty"] < -90),
    ({"price": "2.5"}, lambda r: r["price"] == D("2.5")),
    ({"price__gt": "300.00"}, lambda r: r["price"] is not None and r["price"] > 300),
    ({"price__lte": "1.25"}, lambda r: r["price"] is not None and r["price"] <= D("1.25")),
    ({"price__in": "1.25,2.50,9999"}, lambda r: r["price"] in (D("1.25"), D("2.5"))),
    ({"price__isnull": "1"}, lambda r: r["price"] is None),
    ({"active": "true"}, lambda r: r["active"]),
    ({"active": "No"}, lambda r: not r["active"]),
    ({"day": "2026-01-05"}, lambda r: r["day"] == date(2026, 1, 5)),
    ({"day__gte": "2026-02-01", "day__lte": "2026-02-03"}, lambda r: date(2026, 2, 1) <= r["day"] <= date(2026, 2, 3)),
    ({"day__in": "2026-01-01,2026-01-02"}, lambda r: r["day"] in (date(2026, 1, 1), date(2026, 1, 2))),
    ({"at__lt": "2026-01-20T08:00:00"}, lambda r: r["at"] < AT),  # no offset: Asia/Shanghai
    ({"at__gte": "2026-01-20T00:00:00Z"}, lambda r: r["at"] >= AT),  # the same instant in UTC
    ({"at": "2026-01-01T13:00:00+08:00"}, lambda r: r["at"] == datetime(2026, 1, 1, 13, tzinfo=SHANGHAI)),
    ({"country": "de"}, lambda r: r["country"] == "DE"),  # either case; the dataset's lower-case "sg" was raised
    ({"country__in": "SG,JP"}, lambda r: r["country"] in ("SG", "JP")),
    ({"ccy": "CNY", "limit__eq": "2"}, lambda r: r["ccy"] == "CNY" and r["limit"] == 2),
    (
        {"limit__in": "0,3", "active": "false", "country": "US"},
        lambda r: r["limit"] in (0, 3) and not r["active"] and r["country"] == "US",
    ),  # fmt: skip
    ({"code": "nothing"}, lambda r: False),
]


class TestFilters:
    @pytest.mark.parametrize(("params", "test"), FILTERS, ids=[urlencode(p, doseq=True) for p, _ in FILTERS])
    def test_each_operator_and_type(self, entitlement, key, params, test):
        rows, _ = walk(gateway(key), entitlement, limit=20, **params)
        assert rows == expected(where(test))

    def test_filtered_and_ordered_pages(self, entitlement, key):
        params = {"price__gte": "50", "country__in": "CN,DE,SG", "order_by": "-day,qty"}
        rows, pages = walk(gateway(key), entitlement, limit=6, **params)
        wanted = ordered(where(lambda r: r["price"] is not None and r["price"] >= 50 and r["country"] in
                               ("CN", "DE", "SG")), "-day", "qty")  # fmt: skip
        assert rows == expected(wanted) and pages == -(-len(wanted) // 6)


BAD = [
    # (parameters, code, the parameter named)
    ({"nope": "1"}, "unknown_field", "nope"),
    ({"nope__gte": "1"}, "unknown_field", "nope__gte"),
    ({"qty__like": "1"}, "invalid_operator", "qty__like"),
    ({"qty__": "1"}, "invalid_operator", "qty__"),
    ({"qty": "1.5"}, "invalid_value", "qty"),
    ({"qty": "9" * 30}, "invalid_value", "qty"),
    ({"qty": "١٢"}, "invalid_value", "qty"),  # Arabic-Indic digits: Python's int() takes them, the gateway does not
    ({"qty__in": "1,,2"}, "invalid_value", "qty__in"),
    ({"qty__in": ",".join(str(i) for i in range(101))}, "invalid_value", "qty__in"),
    ({"price__gt": "1e5"}, "invalid_value", "price__gt"),
    ({"price__gt": "NaN"}, "invalid_value", "price__gt"),
    ({"price": "1." + "1" * 19}, "invalid_value", "price"),
    ({"active": "maybe"}, "invalid_value", "active"),
    ({"day": "2026-02-30"}, "invalid_value", "day"),
    ({"day": "20260101"}, "invalid_value", "day"),
    ({"at__gt": "yesterday"}, "invalid_value", "at__gt"),
    ({"at__gt": "2026-01-01T25:00:00"}, "invalid_value", "at__gt"),
    ({"code__isnull": "perhaps"}, "invalid_value", "code__isnull"),
    ({"qty": ["1", "2"]}, "repeated_parameter", "qty"),
    ({"columns": "code,nope"}, "unknown_field", "columns"),
    ({"columns": "code,,qty"}, "invalid_columns", "columns"),
    ({"columns": ""}, "invalid_columns", "columns"),
    ({"order_by": "nope"}, "unknown_field", "order_by"),
    ({"order_by": "qty,-qty"}, "invalid_order", "order_by"),
    ({"order_by": "qty,"}, "invalid_order", "order_by"),
    ({"order_by": "code,qty,price,active,day,at"}, "invalid_order", "order_by"),
    ({"limit": "0"}, "invalid_limit", "limit"),
    ({"limit": "1001"}, "invalid_limit", "limit"),
    ({"limit": "ten"}, "invalid_limit", "limit"),
    ({"limit": ["5", "6"]}, "repeated_parameter", "limit"),
    ({"format": "xml"}, "invalid_format", "format"),
    ({"cursor": "garbage"}, "invalid_cursor", "cursor"),
]


class TestRefusals:
    @pytest.mark.parametrize(("params", "code", "parameter"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
    def test_bad_parameters_are_400_naming_the_parameter_and_are_not_counted(
        self, entitlement, key, params, code, parameter, order
    ):
        response = rows_of(gateway(key), entitlement, **params)
        assert response.status_code == 400, response.content
        error = api_error(response)
        assert error["code"] == code and parameter in error["details"], error
        order.refresh_from_db()
        assert order.status == "released"  # a refused call delivers nothing

    def test_a_cursor_of_another_query_or_entitlement_is_refused(self, entitlement, key, product, international):
        first = ok(rows_of(gateway(key), entitlement, limit=5, order_by="qty"))
        cursor = parse_qs(urlsplit(first["next"]).query)["cursor"][0]
        for params in ({"order_by": "-qty"}, {"order_by": "qty", "qty__gt": "0"}, {}):
            response = rows_of(gateway(key), entitlement, limit=5, cursor=cursor, **params)
            assert response.status_code == 400 and api_error(response)["code"] == "invalid_cursor"
        # the same query with other columns and limit goes on
        assert ok(rows_of(gateway(key), entitlement, limit=7, order_by="qty", columns="code", cursor=cursor))

    def test_no_or_bad_credentials_are_401_with_www_authenticate(self, entitlement, key):
        url = f"/data/v1/{entitlement.pk}/rows"
        for header, code in (
            (None, "not_authenticated"),
            ("Data-Key", "invalid_data_key"),
            ("Data-Key a b", "invalid_data_key"),
            ("Data-Key dxd_000000000000_" + "a" * 43, "invalid_data_key"),
            ("Data-Key " + key[:-1] + ("b" if key[-1] != "b" else "c"), "invalid_data_key"),
            ("Data-Key ключ", "invalid_data_key"),
        ):
            client = gateway(None)
            if header:
                client.credentials(HTTP_AUTHORIZATION=header)
            response = client.get(url)
            assert response.status_code == 401, (header, response.content)
            assert api_error(response)["code"] == code
            assert response["WWW-Authenticate"].startswith("Data-Key")
        # a firm API key or a session is no data credential
        api_key = api_client_for(entitlement.buyer_firm.memberships.first().user, auth="key")
        assert api_key.get(url).status_code == 401

    def test_a_credential_opens_its_own_entitlement_only(self, entitlement, key, product, international, clerk):
        other = place(international, product, one_off(product, amount="10.00"), delivery_mode="api").entitlement
        for path in ("rows", "schema"):
            response = gateway(key).get(f"/data/v1/{other.pk}/{path}")
            assert response.status_code == 404 and api_error(response)["code"] == "entitlement_not_found"
            missing = gateway(key).get(f"/data/v1/999999/{path}")
            assert missing.status_code == 404 and api_error(missing)["code"] == "entitlement_not_found"
        assert gateway(key).get("/data/v1/nothing/here").status_code == 404


def refused(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error = api_error(response)
    assert error["code"] == code, error
    return error


class TestEntitlementStates:
    def test_an_ended_entitlement_refuses_at_once_and_revokes_its_credential(self, entitlement, key, officer):
        from settlements.services import orders

        ok(rows_of(gateway(key), entitlement, limit=1))
        orders.entitlement_revoke(entitlement=entitlement, actor=officer, reason="Resold in breach of licence.")
        # the credential ended with it: 401 revoked (the gateway would refuse the entitlement anyway)
        refused(rows_of(gateway(key), entitlement), 401, "data_key_revoked")
        assert DataCredential.objects.get().revoked_at is not None
        with pytest.raises(ApplicationError) as no_new:
            credentials.credential_issue(entitlement=entitlement, actor=entitlement.order.placed_by)
        assert no_new.value.code == "entitlement_not_usable"

    def test_a_lapsed_entitlement_refuses_with_its_status(self, entitlement, key):
        from settlements.models import Entitlement

        Entitlement.objects.filter(pk=entitlement.pk).update(
            status="lapsed", grace_until=timezone.now() + timedelta(days=3)
        )
        error = refused(rows_of(gateway(key), entitlement), 409, "entitlement_not_usable")
        assert error["details"]["status"] == "lapsed"
        refused(gateway(key).get(f"/data/v1/{entitlement.pk}/schema"), 409, "entitlement_not_usable")

    def test_a_suspended_product_refuses_before_the_relay_ends_the_entitlement(self, entitlement, key, reviewer):
        listing_services.product_suspend(product=entitlement.product, actor=reviewer, reason="Complaint.")
        refused(rows_of(gateway(key), entitlement), 409, "entitlement_not_usable")

    def test_a_term_run_out_refuses(self, entitlement, key):
        import time_machine

        with time_machine.travel(entitlement.ends_at + timedelta(seconds=1)):
            refused(rows_of(gateway(key), entitlement), 409, "entitlement_not_usable")

    def test_a_file_delivery_entitlement_has_no_credential_and_its_rows_are_refused(
        self, product, international, clerk
    ):
        fund(international, clerk)
        file_entitlement = place(international, product, one_off(product), delivery_mode="file").entitlement
        with pytest.raises(ApplicationError) as no_key:
            credentials.credential_issue(entitlement=file_entitlement, actor=international)
        assert no_key.value.code == "not_api_delivery"
        # a credential row for it (as none is made) is still refused by the gateway
        raw = "dxd_abcdefabcdef_" + "k" * 43
        DataCredential.objects.create(
            entitlement=file_entitlement, prefix="abcdefabcdef", key_hash=credentials.credential_hash(raw),
            created_by=international,
        )  # fmt: skip
        refused(rows_of(gateway(raw), file_entitlement), 409, "not_api_delivery")

    def test_a_missing_dataset(self, entitlement, key):
        Dataset.objects.filter(revision=entitlement.revision).update(status="invalid")
        refused(rows_of(gateway(key), entitlement), 409, "dataset_missing")
        refused(gateway(key).get(f"/data/v1/{entitlement.pk}/schema"), 409, "dataset_missing")


class TestDelivery:
    def test_the_first_answered_call_delivers_a_released_order_once(self, order, entitlement, key):
        refused(rows_of(gateway(key), entitlement, limit="x"), 400, "invalid_limit")
        order.refresh_from_db()
        assert order.status == "released"
        ok(rows_of(gateway(key), entitlement, limit=3))
        order.refresh_from_db()
        assert order.status == "delivered" and order.acceptance_due_at
        [called] = order.events.filter(kind="called")
        assert called.data == {"credential": key.split("_")[1], "rows": 3}
        ok(rows_of(gateway(key), entitlement, limit=3))
        assert order.events.filter(kind="delivered").count() == 1
        from exchange.outbox import OutboxEvent

        [event] = OutboxEvent.objects.filter(topic="order.delivered", key=str(order.pk))
        assert event.payload["by"] == "api"

    def test_the_dictionary_delivers_nothing(self, order, entitlement, key):
        ok(gateway(key).get(f"/data/v1/{entitlement.pk}/schema"))
        order.refresh_from_db()
        assert order.status == "released"

    def test_a_subscription_follows_the_listed_revision_and_a_stale_cursor_is_refused(
        self, product, provider, international, clerk
    ):
        from listings.models import DataProduct
        from tests.factories import PricePlanFactory, RevisionFactory

        fund(international, clerk)
        plan = PricePlanFactory(product=product, kind="subscription", period="month", currency="CNY", amount=D("10"))
        subscription = place(international, product, plan, delivery_mode="api").entitlement
        _credential, raw = credentials.credential_issue(entitlement=subscription, actor=international)
        first = ok(rows_of(gateway(raw), subscription, limit=2))
        newer = RevisionFactory(
            product=product, number=2, created_by=provider, dictionary=DICTIONARY[:2], sample_content=b"code,qty\nZ,1\n"
        )
        valid_dataset(newer, uploaded_by=provider, content=b"code,qty\nZ,1\nY,2\n")
        DataProduct.objects.filter(pk=product.pk).update(listed_revision=newer)
        refused(gateway(raw).get(first["next"]), 409, "cursor_stale")
        page = ok(rows_of(gateway(raw), subscription))
        assert page["revision"] == 2 and page["fields"] == ["code", "qty"]
        assert page["rows"] == [{"code": "Z", "qty": 1}, {"code": "Y", "qty": 2}] and page["next"] is None


# --- The credential ------------------------------------------------------------------------------------------------


class TestCredential:
    def test_issued_shown_once_stored_hashed_and_audited(self, entitlement, international):
        from exchange.models import AuditEvent

        credential, raw = credentials.credential_issue(entitlement=entitlement, actor=international)
        assert raw.startswith(f"dxd_{credential.prefix}_") and len(raw) == 4 + 12 + 1 + 43
        assert credential.key_hash == credentials.credential_hash(raw) and raw not in str(credential.__dict__)
        event = AuditEvent.objects.get(verb="settlements.data_credential_issued")
        assert event.payload == {"entitlement": entitlement.pk, "prefix": credential.prefix, "replaces": []}
        assert raw not in str(event.payload)

    def test_a_new_one_replaces_the_last_which_stops_working(self, entitlement, international, key):
        ok(rows_of(gateway(key), entitlement, limit=1))
        _new, raw = credentials.credential_issue(entitlement=entitlement, actor=international)
        refused(rows_of(gateway(key), entitlement, limit=1), 401, "data_key_revoked")
        ok(rows_of(gateway(raw), entitlement, limit=1))
        assert DataCredential.objects.filter(entitlement=entitlement, revoked_at__isnull=True).count() == 1

    def test_revoked_it_stops_working_and_cannot_be_revoked_twice(self, entitlement, international, key):
        credential = DataCredential.objects.get(revoked_at__isnull=True)
        credentials.credential_revoke(credential=credential, actor=international)
        refused(rows_of(gateway(key), entitlement), 401, "data_key_revoked")
        with pytest.raises(ApplicationError) as twice:
            credentials.credential_revoke(credential=credential, actor=international)
        assert twice.value.code == "already_revoked"

    @pytest.mark.parametrize(
        ("who", "may_issue", "may_revoke"),
        [
            ("buyer_admin", True, True),
            ("buyer_trader", True, True),
            ("buyer_analyst", False, False),
            ("rival", False, False),
            ("provider", False, False),
            ("clerk", False, True),  # staff who revoke entitlements revoke credentials, and make none
            ("officer", False, True),
            ("reviewer", False, False),
            ("ops", False, False),
        ],
    )
    def test_who_may_issue_and_revoke(self, request, entitlement, international, who, may_issue, may_revoke):
        firm = entitlement.buyer_firm
        people = {
            "buyer_admin": lambda: international,
            "buyer_trader": lambda: member(firm, "trader"),
            "buyer_analyst": lambda: member(firm, "analyst"),
            "rival": lambda: member(
                admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin"
            ),
        }
        actor = people[who]() if who in people else request.getfixturevalue(who)
        if may_issue:
            credentials.credential_issue(entitlement=entitlement, actor=actor)
        else:
            with pytest.raises(NotAllowed):
                credentials.credential_issue(entitlement=entitlement, actor=actor)
        credential, _raw = credentials.credential_issue(entitlement=entitlement, actor=international)
        if may_revoke:
            assert credentials.credential_revoke(credential=credential, actor=actor).revoked_at
        else:
            with pytest.raises(NotAllowed):
                credentials.credential_revoke(credential=credential, actor=actor)


# --- The faces: API, portal, admin ---------------------------------------------------------------------------------


class TestApi:
    def test_make_use_and_revoke_a_credential_by_api_key(self, entitlement, international):
        client = api_client_for(international, auth="key")
        made = client.post(f"/api/v1/entitlements/{entitlement.pk}/credential")
        assert made.status_code == 201, made.content
        body = made.json()
        assert body["rows_url"] == f"http://testserver/data/v1/{entitlement.pk}/rows"
        assert body["schema_url"] == f"http://testserver/data/v1/{entitlement.pk}/schema"
        assert body["prefix"] == body["key"].split("_")[1] and body["revoked_at"] is None
        page = ok(gateway(body["key"]).get(body["rows_url"] + "?limit=2"))
        assert page["rows"] == expected(EXPECTED[:2])
        revoked = client.post(f"/api/v1/entitlements/{entitlement.pk}/credential/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        refused(gateway(body["key"]).get(body["rows_url"]), 401, "data_key_revoked")
        again = client.post(f"/api/v1/entitlements/{entitlement.pk}/credential/revoke")
        assert again.status_code == 409 and api_error(again)["code"] == "no_credential"

    def test_refusals(self, entitlement, international, product, clerk):
        firm = entitlement.buyer_firm
        analyst = api_client_for(member(firm, "analyst"), auth="key")
        assert api_error(analyst.post(f"/api/v1/entitlements/{entitlement.pk}/credential"))["code"] == "not_allowed"
        rival = member(admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin")
        for path in ("credential", "credential/revoke"):
            answer = api_client_for(rival, auth="key").post(f"/api/v1/entitlements/{entitlement.pk}/{path}")
            assert answer.status_code == 404 and api_error(answer)["code"] == "not_found"
        assert api_client_for(rival, auth="key").get(f"/api/v1/entitlements/{entitlement.pk}/usage").status_code == 404
        reader = api_client_for(international, auth="key", scopes=("read",))
        answer = reader.post(f"/api/v1/entitlements/{entitlement.pk}/credential")
        assert answer.status_code == 403 and api_error(answer)["code"] == "insufficient_scope"
        assert api_client_for(None).post(f"/api/v1/entitlements/{entitlement.pk}/credential").status_code == 401
        file_entitlement = place(international, product, one_off(product, "5.00")).entitlement
        answer = api_client_for(international, auth="key").post(
            f"/api/v1/entitlements/{file_entitlement.pk}/credential"
        )
        assert answer.status_code == 409 and api_error(answer)["code"] == "not_api_delivery"


class TestPortal:
    def test_make_see_once_and_revoke_a_credential(self, client, entitlement, international):
        login_as(client, international)
        page = client.get("/portal/entitlements/").content.decode()
        assert "No data credential" in page and f"/portal/entitlements/{entitlement.pk}/credential" in page
        assert "/data/v1/docs/" in page
        made = client.post(f"/portal/entitlements/{entitlement.pk}/credential")
        assert made.status_code == 303 and made["Location"] == f"/portal/entitlements/{entitlement.pk}/credential/new"
        shown = client.get(made["Location"])
        credential = DataCredential.objects.get(revoked_at__isnull=True)
        raw = shown.context["raw_key"]
        assert raw and raw.startswith(f"dxd_{credential.prefix}_") and raw in shown.content.decode()
        assert "no-store" in shown["Cache-Control"]
        assert f"http://testserver/data/v1/{entitlement.pk}/rows" in shown.content.decode()
        ok(rows_of(gateway(raw), entitlement, limit=1))
        # shown once: reloading shows no key
        again = client.get(made["Location"])
        assert again.context["raw_key"] is None and raw not in again.content.decode()
        listed = client.get("/portal/entitlements/").content.decode()
        assert str(credential) in listed and "Replace credential" in listed and raw not in listed
        revoked = client.post(f"/portal/entitlements/{entitlement.pk}/credential/revoke")
        assert revoked.status_code == 303
        refused(rows_of(gateway(raw), entitlement), 401, "data_key_revoked")

    def test_an_analyst_sees_and_cannot_make_another_firm_cannot_reach(self, client, entitlement, key):
        analyst = member(entitlement.buyer_firm, "analyst")
        login_as(client, analyst)
        page = client.get("/portal/entitlements/").content.decode()
        assert "Data credential" in page and "Replace credential" not in page
        assert client.post(f"/portal/entitlements/{entitlement.pk}/credential").status_code == 403
        assert client.post(f"/portal/entitlements/{entitlement.pk}/credential/revoke").status_code == 403
        rival = member(admit(MemberFirmFactory(country="DE", role="buyer"), "international"), "firm_admin")
        login_as(client, rival)
        for path in ("credential", "credential/revoke"):
            assert client.post(f"/portal/entitlements/{entitlement.pk}/{path}").status_code == 404
        assert client.get(f"/portal/entitlements/{entitlement.pk}/credential/new").status_code == 404
        client.logout()
        assert client.post(f"/portal/entitlements/{entitlement.pk}/credential").status_code == 302  # to log in


class TestAdmin:
    def test_an_officer_revokes_a_credential_and_a_reader_cannot(self, client, entitlement, key, officer, ops):
        from django.urls import reverse

        from tests.settlements.test_admin import as_staff

        credential = DataCredential.objects.get()
        changelist = reverse("admin:settlements_datacredential_changelist")
        as_staff(client, ops)
        assert client.get(changelist).status_code == 200
        client.post(changelist, {"action": "revoke", "_selected_action": [credential.pk], "apply": "1"})
        credential.refresh_from_db()
        assert credential.revoked_at is None
        as_staff(client, officer)
        asked = client.post(changelist, {"action": "revoke", "_selected_action": [credential.pk]})
        assert asked.status_code == 200 and str(credential) in asked.content.decode()
        client.post(changelist, {"action": "revoke", "_selected_action": [credential.pk], "apply": "1"})
        credential.refresh_from_db()
        assert credential.revoked_at and credential.revoked_by == officer
        refused(rows_of(gateway(key), entitlement), 401, "data_key_revoked")


# --- Fuzzing: no input answers a server error, and every answer is one the gateway's schema documents ---------------


def test_schemathesis_on_the_gateway_schema_finds_no_server_error_nor_undocumented_answer(entitlement, key, settings):
    import schemathesis
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    settings.DATA_GATEWAY_THROTTLE_RATE = None  # a fuzzer is no abuser
    # The WSGI handler would close the test's connection at the end of each request (as the API's fuzz test says).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    failures = []
    statuses: set[tuple[str, int]] = set()
    try:
        schema = schemathesis.openapi.from_wsgi("/data/v1/openapi.json", get_wsgi_application())
        headers = {"Authorization": f"Data-Key {key}"}
        names = [f["name"] for f in DICTIONARY]
        # Filters aimed at the dictionary's fields with every operator, and values of every type and none.
        filters = st.dictionaries(
            st.builds(
                lambda f, op: f + op,
                st.sampled_from([*names, "nope"]),
                st.sampled_from(["", "__eq", "__gt", "__gte", "__lt", "__lte", "__in", "__isnull", "__bad"]),
            ),
            st.one_of(
                st.sampled_from(["1", "-3", "2.5", "true", "2026-01-02", "2026-01-02T03:04:05+08:00", "DE", "C1,C2"]),
                st.text(max_size=12),
            ),
            max_size=3,
        )
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(
                case=st.one_of(
                    operation.as_strategy(),
                    operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
                    operation.as_strategy(path_parameters={"entitlement": entitlement.pk}),
                ),
                extra=filters,
                order=st.one_of(st.none(), st.lists(st.sampled_from(names + ["-" + n for n in names]), max_size=3)),
            )
            @hypothesis_settings(
                max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )
            def fuzz(case, extra, order):
                if case.path_parameters and "entitlement" in case.path_parameters and extra:
                    case.query = {**(case.query or {}), **extra}
                    if order is not None:
                        case.query["order_by"] = ",".join(order)
                response = case.call_and_validate(
                    headers=headers,
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        content_type_conformance,
                        response_schema_conformance,
                    ],
                )
                statuses.add((operation.path.rsplit("/", 1)[1], response.status_code))

            try:
                fuzz()
            except Exception as exc:  # collected: one report naming every operation that failed
                failures.append(f"{operation.label}: {str(exc)[:3000]}")
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    assert not failures, "\n\n".join(failures)
    # the fuzzing reached the data, and its refusals
    assert {("rows", 200), ("rows", 400), ("rows", 404), ("schema", 200), ("schema", 404)} <= statuses, statuses


# --- The meter at its edge -----------------------------------------------------------------------------------------


def metered(product, buyer, clerk, *, included=2, unit="0.50", budget="1.00"):
    """A metered plan: `included` calls, then `unit` a call from the usage budget (no buyer's fee here)."""
    from tests.factories import PricePlanFactory

    fund(buyer, clerk)
    plan = PricePlanFactory(
        product=product, kind="metered", period="month", currency="CNY", amount=D("100.00"), included_calls=included,
        unit_price=D(unit),
    )  # fmt: skip
    entitlement = place(buyer, product, plan, usage_budget=D(budget), delivery_mode="api").entitlement
    _credential, raw = credentials.credential_issue(entitlement=entitlement, actor=buyer)
    return entitlement, raw


class TestMeter:
    def test_included_calls_then_the_last_affordable_then_429(self, product, international, clerk):
        from settlements.services import metering

        entitlement, raw = metered(product, international, clerk)  # 2 included + 1.00 / 0.50 = 4 calls
        for _ in range(4):
            ok(rows_of(gateway(raw), entitlement, limit=1))
        error = refused(rows_of(gateway(raw), entitlement, limit=1), 429, "usage_budget_exhausted")
        assert error["details"]["call_limit"] == 4 and error["details"]["calls_included"] == 2
        usage = metering.usage_current(entitlement)
        assert metering.usage_calls(usage) == 4  # the refused call is not counted
        # the dictionary is not a call, and answers still
        ok(gateway(raw).get(f"/data/v1/{entitlement.pk}/schema"))

    def test_a_quota_without_a_price_per_call(self, product, international, clerk):
        from tests.factories import PricePlanFactory

        fund(international, clerk)
        plan = PricePlanFactory(
            product=product, kind="subscription", period="month", currency="CNY", amount=D("50"), included_calls=3
        )
        entitlement = place(international, product, plan, delivery_mode="api").entitlement
        _credential, raw = credentials.credential_issue(entitlement=entitlement, actor=international)
        for _ in range(3):
            ok(rows_of(gateway(raw), entitlement, limit=1))
        refused(rows_of(gateway(raw), entitlement), 429, "quota_exhausted")

    @pytest.mark.parametrize("meter_cache", ["", "default"])  # the usage row as the counter; a cache
    def test_refused_requests_and_engine_failures_are_not_counted(
        self, product, international, clerk, monkeypatch, settings, meter_cache
    ):
        import duckdb

        settings.SETTLEMENT_METER_CACHE = meter_cache
        from settlements.gateway import query as gq
        from settlements.services import metering

        entitlement, raw = metered(product, international, clerk)
        for params in ({"limit": "0"}, {"nope": "1"}, {"cursor": "x"}, {"format": "xml"}):
            assert rows_of(gateway(raw), entitlement, **params).status_code == 400
        refused(gateway(None).get(f"/data/v1/{entitlement.pk}/rows"), 401, "not_authenticated")

        def broken(query, path):
            raise duckdb.IOException("the file went away")

        monkeypatch.setattr(gq, "run", broken)
        refused(rows_of(gateway(raw), entitlement), 409, "dataset_missing")
        assert metering.usage_calls(metering.usage_current(entitlement)) == 0
        monkeypatch.undo()
        ok(rows_of(gateway(raw), entitlement, limit=1))
        assert metering.usage_calls(metering.usage_current(entitlement)) == 1

    def test_the_usage_by_api_and_in_the_portal(self, client, product, international, clerk):
        entitlement, raw = metered(product, international, clerk, included=5, budget="2.00")
        for _ in range(3):
            ok(rows_of(gateway(raw), entitlement, limit=1))
        answer = api_client_for(international, auth="key").get(f"/api/v1/entitlements/{entitlement.pk}/usage")
        assert answer.status_code == 200, answer.content
        [period] = answer.json()["periods"]
        assert period["current"] is True and period["calls"] == 3
        assert (period["calls_included"], period["call_limit"], period["unit_price"]) == (5, 9, "0.500000")
        assert period["currency"] == "CNY" and period["charged"] is None
        login_as(client, international)
        page = client.get("/portal/entitlements/").content.decode()
        assert "3 of at most 9 calls this period" in page

    def test_the_usage_of_a_file_delivery_is_empty(self, product, international, clerk):
        fund(international, clerk)
        file_entitlement = place(international, product, one_off(product)).entitlement
        answer = api_client_for(international, auth="key").get(f"/api/v1/entitlements/{file_entitlement.pk}/usage")
        assert answer.status_code == 200 and answer.json()["periods"] == []


def test_refusals_speak_chinese_when_asked(entitlement, key):
    response = gateway(key).get(f"/data/v1/{entitlement.pk}/rows?nope=1", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 400 and "数据字典中没有该字段" in api_error(response)["message"]


def test_a_page_costs_a_bounded_number_of_queries(entitlement, key, django_assert_max_num_queries):
    ok(rows_of(gateway(key), entitlement, limit=1))  # the first call delivers the order and makes the usage row
    with django_assert_max_num_queries(5):  # credential+entitlement+order+product; dataset+revision; the meter's
        ok(rows_of(gateway(key), entitlement, limit=100, order_by="-price", country="DE"))


def test_the_gateways_own_schema_and_docs_and_the_main_schema_leaves_it_out(client):
    served = client.get("/data/v1/openapi.json")
    assert served.status_code == 200 and served["Content-Type"].startswith("application/json")
    schema = served.json()
    assert schema["openapi"] == "3.1.0"
    assert set(schema["paths"]) == {"/data/v1/{entitlement}/rows", "/data/v1/{entitlement}/schema"}
    assert schema["components"]["securitySchemes"] == {
        "DataKeyAuth": schema["components"]["securitySchemes"]["DataKeyAuth"]
    }
    for path in schema["paths"].values():
        responses = path["get"]["responses"]
        assert {"200", "401", "404", "406", "409", "429"} <= set(responses)
        assert "Retry-After" in responses["429"]["headers"]
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}
    assert client.get("/data/v1/docs/").status_code == 200
    main = client.get("/api/v1/schema/?format=json").json()
    assert not [p for p in main["paths"] if p.startswith("/data/")]
    assert "/api/v1/entitlements/{id}/credential" in main["paths"]
