"""The trading API through its doors: orders (quote, idempotent create, steps), access requests, balances,
statement lines and withdrawals; every list scoped to the caller's firm. Every answer is checked against the
schema by the suite's openapi-core fixture; the ledger's invariants after every test by the package's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange.outbox import outbox_relay
from listings.models import Revision
from settlements.models import Order, Withdrawal
from tests.factories import (
    MemberFirmFactory,
    PricePlanFactory,
    admit,
    api_client_for,
    api_error,
    listed_product,
    member,
)
from tests.settlements.factories import fund

pytestmark = pytest.mark.django_db
D = Decimal


def one_off(product, amount="1000.00", currency="CNY"):
    return PricePlanFactory(
        product=product, name_en="Once", kind="one_off", period="", currency=currency, amount=D(amount)
    )


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer)


@pytest.fixture
def plan(product):
    return one_off(product)


def body(product, plan, **extra):
    return {"product": product.pk, "plan": plan.pk, "delivery_mode": "file", "intended_use": "Market sizing.", **extra}


def place(client, product, plan, key="k-1", **extra):
    return client.post("/api/v1/orders", body(product, plan, **extra), format="json", HTTP_IDEMPOTENCY_KEY=key)


class TestOrders:
    def test_a_quote_then_an_order(self, product, plan, international, clerk):
        fund(international, clerk, "5000.00")
        client = api_client_for(international, auth="key")
        quote = client.post("/api/v1/orders/quote", body(product, plan), format="json")
        assert quote.status_code == 200, quote.content
        assert quote.json()["total"] == "1000.00" and quote.json()["compliance"] == "cleared"
        assert quote.json()["cash_available"] == "5000.00" and quote.json()["licence_en"]
        assert not Order.objects.exists()
        created = place(client, product, plan)
        assert created.status_code == 201, created.content
        order = created.json()
        assert order["status"] == "released" and order["side"] == "buyer" and order["reference"].startswith("DX-")
        assert order["buyer_fee"] == "0.00" and order["provider_fee"] is None
        assert created["Location"] == f"/api/v1/orders/{order['id']}"
        assert [e["kind"] for e in order["events"]] == ["placed", "released"]

    def test_no_key_no_order_and_a_retry_is_the_same_order(self, product, plan, international, clerk):
        fund(international, clerk, "5000.00")
        client = api_client_for(international, auth="key")
        missing = client.post("/api/v1/orders", body(product, plan), format="json")
        assert missing.status_code == 400 and api_error(missing)["code"] == "idempotency_key_required"
        first = place(client, product, plan, key="retry-1")
        again = place(client, product, plan, key="retry-1")
        assert again.status_code == 201 and again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        other = place(client, product, plan, key="retry-1", intended_use="Something else.")
        assert other.status_code == 422 and api_error(other)["code"] == "idempotency_key_reused"
        assert Order.objects.count() == 1

    @pytest.mark.parametrize(
        "extra, status, code",
        [
            ({"delivery_mode": "sandbox"}, 422, "delivery_not_offered"),
            ({"delivery_mode": "fax"}, 400, "validation_error"),
            ({"usage_budget": "10.00"}, 422, "validation_error"),
            ({"usage_budget": 10.5}, 400, "validation_error"),
            ({"destination": "US"}, 422, "validation_error"),
            ({"colour": "blue"}, 400, "validation_error"),
            ({"plan": 2**63}, 400, "validation_error"),
        ],
    )
    def test_bad_orders_are_4xx_with_a_code(self, product, plan, international, clerk, extra, status, code):
        fund(international, clerk, "5000.00")
        client = api_client_for(international, auth="key")
        response = client.post(
            "/api/v1/orders", {**body(product, plan), **extra}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert response.status_code == status, response.content
        assert api_error(response)["code"] == code
        assert not Order.objects.exists()

    def test_refusals_by_the_services(self, product, plan, international, provider, clerk):
        client = api_client_for(international, auth="key")
        assert api_error(place(client, product, plan, key="a"))["code"] == "currency_not_held"
        fund(international, clerk, "10.00")
        refused = place(client, product, plan, key="b")
        assert refused.status_code == 422 and api_error(refused)["code"] == "insufficient_funds"
        own = place(api_client_for(provider, auth="key"), product, plan, key="c")
        assert own.status_code == 403 and api_error(own)["code"] == "own_product"

    def test_a_product_the_caller_may_not_see_is_a_404(self, product, plan, domestic, clerk):
        fund(domestic, clerk)
        response = place(api_client_for(domestic, auth="key"), product, plan)
        assert response.status_code == 404

    def test_a_read_key_cannot_order(self, product, plan, international, clerk):
        fund(international, clerk)
        response = place(api_client_for(international, auth="key", scopes=("read",)), product, plan)
        assert response.status_code == 403 and api_error(response)["code"] == "insufficient_scope"

    def test_the_steps_each_side_takes(self, product, plan, international, provider, clerk):
        fund(international, clerk)
        buyer, seller = api_client_for(international, auth="key"), api_client_for(provider, auth="key")
        order_id = place(buyer, product, plan).json()["id"]
        url = f"/api/v1/orders/{order_id}"
        assert buyer.post(f"{url}/confirm-delivery", {}, format="json").status_code == 403
        delivered = seller.post(f"{url}/confirm-delivery", {"note": "SFTP"}, format="json")
        assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
        assert delivered.json()["side"] == "provider" and delivered.json()["provider_fee"] == "8.00"
        assert delivered.json()["buyer_fee"] is None
        cancel = buyer.post(f"{url}/cancel", {}, format="json")
        assert cancel.status_code == 409 and api_error(cancel)["code"] == "invalid_transition"
        empty = buyer.post(f"{url}/dispute", {"reason": " "}, format="json")
        assert empty.status_code == 400 and "reason" in api_error(empty)["details"]
        accepted = buyer.post(f"{url}/accept", format="json")
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
        outbox_relay()
        assert buyer.get(url).json()["status"] == "settled"

    def test_lists_and_details_are_the_callers_firms_only(
        self, product, plan, international, provider, clerk, django_assert_max_num_queries
    ):
        fund(international, clerk)
        other = member(admit(MemberFirmFactory(country="SG", role="buyer"), "international"), "firm_admin")
        fund(other, clerk)
        mine = place(api_client_for(international, auth="key"), product, plan).json()["id"]
        theirs = place(api_client_for(other, auth="key"), product, plan).json()["id"]
        client = api_client_for(international, auth="key")
        with django_assert_max_num_queries(8):
            listed = client.get("/api/v1/orders")
        assert [o["id"] for o in listed.json()["results"]] == [mine]
        assert client.get(f"/api/v1/orders/{theirs}").status_code == 404
        assert client.post(f"/api/v1/orders/{theirs}/cancel", {}, format="json").status_code == 404
        assert client.get(f"/api/v1/orders/{2**63}").status_code == 404
        sold = api_client_for(provider, auth="key").get("/api/v1/orders?side=provider").json()["results"]
        assert sorted(o["id"] for o in sold) == sorted([mine, theirs])
        assert api_client_for(provider, auth="key").get("/api/v1/orders?side=buyer").json()["results"] == []
        assert client.get("/api/v1/orders?status=nonsense").status_code == 400

    def test_staff_have_no_orders(self, clerk):
        response = api_client_for(clerk).get("/api/v1/orders")
        assert response.status_code == 403 and api_error(response)["code"] == "no_firm"


class TestAccessRequests:
    def test_request_approve_then_order(self, product, plan, international, provider, clerk):
        Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
        fund(international, clerk)
        buyer, seller = api_client_for(international, auth="key"), api_client_for(provider, auth="key")
        refused = place(buyer, product, plan, key="x1")
        assert refused.status_code == 409 and api_error(refused)["code"] == "access_request_required"
        created = buyer.post(
            "/api/v1/access-requests", {"product": product.pk, "intended_use": "Importer scoring."}, format="json"
        )
        assert created.status_code == 201, created.content
        request_id = created.json()["id"]
        assert created.json()["status"] == "pending" and created.json()["destination"] == "SG"
        incoming = seller.get("/api/v1/access-requests?side=provider").json()["results"]
        assert [r["id"] for r in incoming] == [request_id]
        assert buyer.post(f"/api/v1/access-requests/{request_id}/approve", {}, format="json").status_code == 403
        declined_without = seller.post(f"/api/v1/access-requests/{request_id}/decline", {}, format="json")
        assert declined_without.status_code == 400
        approved = seller.post(f"/api/v1/access-requests/{request_id}/approve", {"reason": "OK"}, format="json")
        assert approved.status_code == 200 and approved.json()["approval_expires_at"]
        order = place(buyer, product, plan, key="x2", intended_use="")
        assert order.status_code == 201 and order.json()["intended_use"] == "Importer scoring."
        assert buyer.get(f"/api/v1/access-requests/{request_id}").json()["status"] == "used"

    def test_another_firms_request_is_a_404(self, product, international, provider, unadmitted):
        Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
        created = api_client_for(international, auth="key").post(
            "/api/v1/access-requests", {"product": product.pk, "intended_use": "x"}, format="json"
        )
        other = api_client_for(unadmitted, auth="key")
        assert other.get(f"/api/v1/access-requests/{created.json()['id']}").status_code == 404
        assert other.get("/api/v1/access-requests").json()["results"] == []


class TestMoney:
    def test_balances_and_statement_lines(self, product, plan, international, clerk):
        fund(international, clerk, "5000.00")
        client = api_client_for(international, auth="key")
        place(client, product, plan)
        [balance] = client.get("/api/v1/balances").json()
        assert balance == {
            "currency": "CNY",
            "cash": "4000.00",
            "escrow": "1000.00",
            "payable": "0.00",
            "withdrawal": "0.00",
        }
        lines = client.get("/api/v1/statement-lines").json()["results"]
        assert [(line["account"], line["amount"], line["kind"]) for line in lines] == [
            ("escrow", "1000.00", "funding"),
            ("cash", "-1000.00", "funding"),
            ("cash", "5000.00", "deposit"),
        ]
        assert lines[0]["order"] is not None and lines[2]["order"] is None
        escrow_only = client.get("/api/v1/statement-lines?account=escrow").json()["results"]
        assert [line["amount"] for line in escrow_only] == ["1000.00"]

    def test_withdrawals_by_the_firm_admin_only(self, international, clerk):
        fund(international, clerk, "100.00")
        admin = api_client_for(international, auth="key")
        trader = api_client_for(member(international.membership.firm, "trader"), auth="key")
        payload = {"currency": "CNY", "amount": "60.00", "bank_account": "DBS 003-1"}
        assert trader.post("/api/v1/withdrawals", payload, format="json", HTTP_IDEMPOTENCY_KEY="w").status_code == 403
        assert admin.post("/api/v1/withdrawals", payload, format="json").status_code == 400
        created = admin.post("/api/v1/withdrawals", payload, format="json", HTTP_IDEMPOTENCY_KEY="w")
        assert created.status_code == 201 and created.json()["status"] == "requested"
        too_much = admin.post("/api/v1/withdrawals", payload, format="json", HTTP_IDEMPOTENCY_KEY="w2")
        assert too_much.status_code == 422 and api_error(too_much)["code"] == "insufficient_funds"
        cancelled = admin.post(f"/api/v1/withdrawals/{created.json()['id']}/cancel", format="json")
        assert cancelled.json()["status"] == "cancelled"
        assert [w["id"] for w in admin.get("/api/v1/withdrawals").json()["results"]] == [created.json()["id"]]
        assert Withdrawal.objects.get().status == "cancelled"


def test_a_step_whose_body_is_all_optional_still_needs_one(product, plan, international, clerk):
    fund(international, clerk)
    client = api_client_for(international, auth="key")
    order_id = place(client, product, plan).json()["id"]
    bare = client.post(f"/api/v1/orders/{order_id}/cancel")
    assert bare.status_code == 400 and api_error(bare)["code"] == "validation_error"
    assert client.post(f"/api/v1/orders/{order_id}/cancel", {}, format="json").json()["status"] == "cancelled"


def test_a_key_staff_made_moves_no_money(product, plan, international, clerk, ops):
    from exchange import services as exchange_services

    fund(international, clerk, "5000.00")
    _key, raw = exchange_services.api_key_create(
        firm=international.membership.firm, user=international, name="support", scopes=["read", "trade"], actor=ops
    )
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    order = place(client, product, plan)
    assert order.status_code == 403 and api_error(order)["code"] == "staff_made_key"
    payload = {"currency": "CNY", "amount": "100.00", "bank_account": "Ops, ICBC 6222"}
    withdrawal = client.post("/api/v1/withdrawals", payload, format="json", HTTP_IDEMPOTENCY_KEY="w")
    assert withdrawal.status_code == 403 and api_error(withdrawal)["code"] == "staff_made_key"
    assert client.get("/api/v1/balances").status_code == 200
    assert not Order.objects.exists() and not Withdrawal.objects.exists()


class TestEntitlements:
    def test_the_buyer_sees_its_own_and_no_one_else_does(self, product, plan, international, provider, clerk):
        fund(international, clerk, "5000.00")
        placed = place(api_client_for(international, auth="key"), product, plan).json()
        other = member(admit(MemberFirmFactory(country="SG", role="buyer"), "international"), "firm_admin")
        fund(other, clerk, "5000.00")
        place(api_client_for(other, auth="key"), product, plan, key="k-other")
        buyer = api_client_for(international, auth="key", scopes=("read",))
        listed = buyer.get("/api/v1/entitlements")
        assert listed.status_code == 200, listed.content
        [row] = listed.json()["results"]
        assert row["order"] == placed["id"] and row["order_reference"] == placed["reference"]
        assert row["status"] == "active" and row["usable"] is True and row["end_reason"] == ""
        assert row["licence_terms"] == placed["licence_terms"] and row["title_en"] == placed["title_en"]
        assert buyer.get(f"/api/v1/entitlements/{row['id']}").json()["id"] == row["id"]
        # the provider, another buyer, and anyone without a key: not theirs to know
        for client in (api_client_for(provider, auth="key"), api_client_for(other, auth="key")):
            answer = client.get(f"/api/v1/entitlements/{row['id']}")
            assert answer.status_code == 404 and api_error(answer)["code"] == "not_found"
        assert api_client_for(provider, auth="key").get("/api/v1/entitlements").json()["results"] == []
        assert api_client_for(None).get("/api/v1/entitlements").status_code == 401

    def test_ended_ones_are_listed_with_why(self, product, plan, international, clerk):
        fund(international, clerk, "5000.00")
        client = api_client_for(international, auth="key")
        placed = place(client, product, plan).json()
        cancelled = client.post(f"/api/v1/orders/{placed['id']}/cancel", {"reason": "Wrong product."}, format="json")
        assert cancelled.status_code == 200, cancelled.content
        assert client.get("/api/v1/entitlements?status=active").json()["results"] == []
        [row] = client.get("/api/v1/entitlements?status=ended").json()["results"]
        assert row["end_reason"] == "cancelled" and row["usable"] is False and row["ended_at"]
        bad = client.get("/api/v1/entitlements?status=lost")
        assert bad.status_code == 400 and api_error(bad)["code"] == "validation_error"

    def test_staff_have_no_firm_here(self, superuser):
        answer = api_client_for(superuser).get("/api/v1/entitlements")
        assert answer.status_code == 403 and api_error(answer)["code"] == "no_firm"


class TestStopRenewal:
    def test_the_buyer_stops_its_subscription_and_others_cannot(self, product, international, provider, clerk):
        fund(international, clerk, "5000.00")
        plan = PricePlanFactory(product=product, kind="subscription", period="month", amount=D("50.00"))
        placed = place(api_client_for(international, auth="key"), product, plan).json()
        entitlement = api_client_for(international, auth="key").get("/api/v1/entitlements").json()["results"][0]
        assert entitlement["order"] == placed["id"] and entitlement["renews"] is True
        path = f"/api/v1/entitlements/{entitlement['id']}/stop-renewal"
        reader = api_client_for(international, auth="key", scopes=("read",))
        assert api_error(reader.post(path))["code"] == "insufficient_scope"
        assert api_client_for(provider, auth="key").post(path).status_code == 404
        stopped = api_client_for(international, auth="key").post(path)
        assert stopped.status_code == 200, stopped.content
        assert stopped.json()["renews"] is False and stopped.json()["status"] == "active"
        assert api_client_for(international, auth="key").post(path).json()["renews"] is False  # again: unchanged

    def test_a_one_off_has_nothing_to_stop(self, product, plan, international, clerk):
        fund(international, clerk, "5000.00")
        place(api_client_for(international, auth="key"), product, plan)
        client = api_client_for(international, auth="key")
        entitlement = client.get("/api/v1/entitlements").json()["results"][0]
        answer = client.post(f"/api/v1/entitlements/{entitlement['id']}/stop-renewal")
        assert answer.status_code == 409 and api_error(answer)["code"] == "not_renewing"
