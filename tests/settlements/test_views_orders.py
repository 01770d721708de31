"""The buyer's orders and the provider's sales: lists scoped to the caller's firm, the order page with its timeline,
what was bought and the money of the side looking, and the steps each side may take (cancel, accept, dispute;
confirm delivery), through POST, with their refusals shown. Analysts read and do not act; another firm's order is
a 404. The package's fixture checks the ledger's invariants after each test."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from exchange.outbox import outbox_relay
from settlements.models import Order
from settlements.services import orders
from settlements.services.ledger import account_for
from tests.factories import MemberFirmFactory, admit, listed_product, login_as, member
from tests.settlements.factories import fund
from tests.settlements.portal import main, one_off

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer, title_en="Global shipping lanes", title_zh="全球航线数据")


def place(user, product, plan=None, **fields) -> Order:
    return orders.order_place(
        actor=user,
        product_id=product.pk,
        plan_id=(plan or one_off(product)).pk,
        delivery_mode="file",
        intended_use=fields.pop("intended_use", "Port congestion models."),
        **fields,
    )


@pytest.fixture
def order(product, international, clerk) -> Order:
    international.full_name = "Carol Tan"
    international.save(update_fields=["full_name"])
    fund(international, clerk, "5000.00")
    return place(international, product)


@pytest.fixture
def rival_buyer(boards, superuser, clerk):
    """Another buyer firm on the international board, with an order of its own."""
    firm = admit(MemberFirmFactory(legal_name_en="Rival Buyer GmbH", country="DE", role="buyer"), "international")
    return member(firm, "firm_admin", "rolf@rival.example")


def cash(user, kind="cash") -> Decimal:
    return account_for(firm=user.membership.firm, kind=kind, currency="CNY").balance


class TestLists:
    def test_my_orders_and_sales_show_the_firms_own_only(self, client, order, international, provider, rival_buyer,
                                                         product, clerk):  # fmt: skip
        fund(rival_buyer, clerk)
        theirs = place(rival_buyer, product)
        login_as(client, international)
        page = client.get("/portal/orders/")
        assert [row["order"].pk for row in page.context["rows"]] == [order.pk]
        assert order.reference in main(page) and theirs.reference not in main(page)
        assert "Provider Data Co." in main(page) and "1000.00 CNY" in main(page)
        assert client.get(f"/portal/orders/{theirs.pk}/").status_code == 404
        assert client.get("/portal/sales/").context["rows"] == []
        login_as(client, provider)
        sales = client.get("/portal/sales/")
        assert {row["order"].pk for row in sales.context["rows"]} == {order.pk, theirs.pk}
        assert "992.00 CNY" in main(sales)  # what the provider receives, net of its 0.8 %
        assert client.get("/portal/orders/").context["rows"] == []
        login_as(client, rival_buyer)
        assert client.get(f"/portal/orders/{order.pk}/").status_code == 404
        assert client.get(f"/portal/orders/{order.pk}/cancel").status_code == 404
        assert client.post(f"/portal/orders/{order.pk}/cancel").status_code == 404

    def test_the_status_filter_and_junk_parameters(self, client, order, international, product):
        login_as(client, international)
        assert len(client.get("/portal/orders/?status=released").context["rows"]) == 1
        assert client.get("/portal/orders/?status=settled").context["rows"] == []
        junk = client.get("/portal/orders/?status=%00nope&page=abc")
        assert junk.status_code == 200 and len(junk.context["rows"]) == 1
        assert client.get("/portal/orders/?page=99").status_code == 200
        assert client.get("/portal/orders/999999/").status_code == 404

    @pytest.mark.parametrize("path", ["/portal/orders/", "/portal/sales/"])
    def test_the_lists_queries_do_not_grow_with_the_orders(self, client, product, international, provider, clerk,
                                                          path, django_assert_max_num_queries):  # fmt: skip
        fund(international, clerk, "100000.00")
        viewer = international if path == "/portal/orders/" else provider
        login_as(client, viewer)
        place(international, product)
        with django_assert_max_num_queries(6) as few:  # session, user, membership, count, page (P3: <= 6)
            client.get(path)
        for _ in range(12):
            place(international, product)
        with django_assert_max_num_queries(len(few.captured_queries)):
            response = client.get(path)
        assert len(response.context["rows"]) == 13

    def test_anonymous_and_staff(self, client, order, clerk):
        response = client.get("/portal/orders/")
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")
        login_as(client, clerk)
        for path in ("/portal/orders/", "/portal/sales/", f"/portal/orders/{order.pk}/"):
            refused = client.get(path)
            assert refused.status_code == 403 and "exchange staff work in the admin" in main(refused)


class TestTheOrderPage:
    def test_the_buyer_sees_the_timeline_what_was_bought_and_its_money(self, client, order, international):
        login_as(client, international)
        page = client.get(f"/portal/orders/{order.pk}/")
        body = main(page)
        assert page.context["side"] == "buyer"
        for text in (
            order.reference, "Released for delivery", "Order placed", "Carol Tan", "1000.00 CNY held in escrow",
            "Global shipping lanes", "Once", "Port congestion models.", "Singapore", "For the buyer's internal analytics only.",
            "Paid into escrow", "Provider Data Co.", "Cancel the order",
        ):  # fmt: skip
            assert text in body, text
        assert "8.00" not in body  # the provider's fee is the provider's business
        assert "Confirm delivery" not in body

    def test_the_provider_sees_its_net_and_the_buyer_as_a_firm(self, client, order, provider):
        login_as(client, provider)
        body = main(client.get(f"/portal/orders/{order.pk}/"))
        assert "−8.00" in body and "992.00 CNY" in body and "Confirm delivery" in body
        assert "Overseas Buyer Pte. Ltd." in body and "Carol Tan" not in body  # the other firm, not its people
        assert "Cancel the order" not in body

    def test_a_snapshot_is_what_was_bought_not_what_is_listed_now(self, client, order, international):
        from listings.models import PricePlan, Revision

        PricePlan.objects.filter(pk=order.plan_id).update(amount=D("1.00"), name_en="Renamed")
        Revision.objects.filter(pk=order.revision_id).update(licence_en="Changed later")
        login_as(client, international)
        body = main(client.get(f"/portal/orders/{order.pk}/"))
        assert "Once" in body and "1000.00 CNY" in body and "Changed later" not in body


class TestSteps:
    def test_delivery_acceptance_and_settlement_through_the_pages(self, client, order, international, provider):
        # the provider confirms delivery with a note
        login_as(client, provider)
        assert client.get(f"/portal/orders/{order.pk}/deliver").status_code == 200
        response = client.post(f"/portal/orders/{order.pk}/deliver", {"note": "Files sent by SFTP."})
        assert response.status_code == 303 and response["Location"] == f"/portal/orders/{order.pk}/"
        order.refresh_from_db()
        assert order.status == "delivered"
        # the buyer reads it on the timeline, named by its firm, and accepts
        login_as(client, international)
        body = main(client.get(f"/portal/orders/{order.pk}/"))
        assert "Delivery confirmed by the provider" in body and "Files sent by SFTP." in body
        assert "Provider Data Co." in body and "Accept the delivery" in body and "Dispute the delivery" in body
        assert client.get(f"/portal/orders/{order.pk}/accept").status_code == 200
        assert client.post(f"/portal/orders/{order.pk}/accept").status_code == 303
        outbox_relay()
        order.refresh_from_db()
        assert order.status == "settled"
        body = main(client.get(f"/portal/orders/{order.pk}/"))
        assert "Delivery accepted" in body and "Settled: paid to the provider" in body
        assert "The exchange (automatic)" in body

    def test_a_dispute_needs_a_reason(self, client, order, international, provider):
        orders.order_confirm_delivery(order=order, actor=provider)
        login_as(client, international)
        blank = client.post(f"/portal/orders/{order.pk}/dispute", {"reason": "  "})
        assert blank.status_code == 400 and "Say what is wrong" in main(blank)
        response = client.post(f"/portal/orders/{order.pk}/dispute", {"reason": "Half the files are empty."})
        assert response.status_code == 303
        order.refresh_from_db()
        assert order.status == "disputed"
        assert "Half the files are empty." in main(client.get(f"/portal/orders/{order.pk}/"))

    def test_no_dispute_after_the_window(self, client, order, international, provider, settings):
        orders.order_confirm_delivery(order=order, actor=provider)
        login_as(client, international)
        with time_machine.travel(timezone.now() + timedelta(days=settings.SETTLEMENT_ACCEPTANCE_DAYS, seconds=1)):
            assert "Dispute the delivery" not in main(client.get(f"/portal/orders/{order.pk}/"))
            response = client.post(f"/portal/orders/{order.pk}/dispute", {"reason": "Too late."})
            assert response.status_code == 303
            assert "acceptance window has closed" in main(client.get(response["Location"]))
        order.refresh_from_db()
        assert order.status == "delivered"

    def test_cancel_with_its_confirmation_page(self, client, order, international):
        login_as(client, international)
        page = client.get(f"/portal/orders/{order.pk}/cancel")
        assert page.status_code == 200 and "1000.00 CNY return to your firm's cash" in main(page)
        response = client.post(f"/portal/orders/{order.pk}/cancel", {"reason": "Bought by mistake."})
        assert response.status_code == 303
        order.refresh_from_db()
        assert order.status == "cancelled" and cash(international) == D("5000.00")
        body = main(client.get(response["Location"]))
        assert "Cancelled by the buyer" in body and "Bought by mistake." in body
        # the step is no longer open: the page says so, and a second POST is refused with a message
        again = client.get(f"/portal/orders/{order.pk}/cancel")
        assert again.status_code == 303
        refused = client.post(f"/portal/orders/{order.pk}/cancel", {"reason": ""})
        assert refused.status_code == 303 and "only before it is delivered" in main(client.get(refused["Location"]))

    def test_a_step_not_open_now_is_a_message(self, client, order, international):
        login_as(client, international)
        response = client.post(f"/portal/orders/{order.pk}/accept")
        assert response.status_code == 303
        assert "Only a delivered order can be accepted." in main(client.get(response["Location"]))
        order.refresh_from_db()
        assert order.status == "released"

    def test_each_side_acts_only_on_its_own_steps(self, client, order, international, provider):
        login_as(client, provider)
        refused = client.post(f"/portal/orders/{order.pk}/cancel")
        assert refused.status_code == 403 and "buyer's administrators and traders" in main(refused)
        login_as(client, international)
        refused = client.post(f"/portal/orders/{order.pk}/deliver", {"note": ""})
        assert refused.status_code == 403 and "provider's administrators and traders" in main(refused)
        order.refresh_from_db()
        assert order.status == "released"

    def test_analysts_read_but_do_not_act(self, client, order, international, provider):
        analyst = member(international.membership.firm, "analyst")
        login_as(client, analyst)
        page = client.get(f"/portal/orders/{order.pk}/")
        assert page.status_code == 200 and page.context["actions"] == []
        assert "your firm's administrators and traders act on it" in main(page)
        assert client.get(f"/portal/orders/{order.pk}/cancel").status_code == 403
        assert client.post(f"/portal/orders/{order.pk}/cancel").status_code == 403
        provider_analyst = member(provider.membership.firm, "analyst")
        login_as(client, provider_analyst)
        assert client.post(f"/portal/orders/{order.pk}/deliver", {"note": ""}).status_code == 403
        order.refresh_from_db()
        assert order.status == "released"


def test_the_order_page_in_chinese(client, order, international):
    login_as(client, international)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/portal/"})
    body = main(client.get(f"/portal/orders/{order.pk}/"))
    for word in ("订单", "全球航线数据", "资金托管", "授权许可", "使用目的", "交易服务费", "取消订单"):
        assert word in body, word


def test_the_portal_nav_links_trading_for_members_only(client, international, provider, clerk):
    login_as(client, international)
    assert '<a href="/portal/orders/">Trading</a>' in client.get("/portal/").content.decode()
    login_as(client, provider)  # a firm that only sells goes to its sales
    assert '<a href="/portal/sales/">Trading</a>' in client.get("/portal/").content.decode()
    login_as(client, clerk)
    assert "Trading</a>" not in client.get("/portal/").content.decode()


class TestEntitlements:
    def test_the_buyer_sees_its_entitlements_and_no_one_elses(
        self, client, order, rival_buyer, product, provider, clerk
    ):
        fund(rival_buyer, clerk, "5000.00")
        theirs = place(rival_buyer, product)
        login_as(client, order.placed_by)
        page = client.get("/portal/entitlements/")
        assert page.status_code == 200
        text = main(page)
        assert order.entitlement.reference in text and order.reference in text and "Global shipping lanes" in text
        assert theirs.entitlement.reference not in text and "In use" in text
        # the provider has sold, not bought: its list is empty
        login_as(client, provider)
        assert order.entitlement.reference not in main(client.get("/portal/entitlements/"))

    def test_ended_entitlements_say_why_and_the_filter_takes_status(self, client, order):
        orders.order_cancel(order=order, actor=order.placed_by, reason="Wrong lanes.")
        login_as(client, order.placed_by)
        text = main(client.get("/portal/entitlements/?status=ended"))
        assert order.entitlement.reference in text and "The order was cancelled" in text
        assert order.entitlement.reference not in main(client.get("/portal/entitlements/?status=active"))
        # an unknown status is ignored by the filter form, never an error
        assert client.get("/portal/entitlements/?status=lost").status_code == 200

    def test_the_order_page_shows_the_buyer_its_entitlement(self, client, order, provider):
        login_as(client, order.placed_by)
        text = main(client.get(f"/portal/orders/{order.pk}/"))
        assert 'id="entitlement"' in client.get(f"/portal/orders/{order.pk}/").content.decode()
        assert order.entitlement.reference in text
        login_as(client, provider)
        assert 'id="entitlement"' not in client.get(f"/portal/orders/{order.pk}/").content.decode()

    def test_in_chinese(self, client, order):
        login_as(client, order.placed_by)
        text = main(client.get("/portal/entitlements/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
        assert "我的使用权限" in text and "可使用" in text and "My entitlements" not in text

    def test_anonymous_is_sent_to_log_in(self, client):
        answer = client.get("/portal/entitlements/")
        assert answer.status_code == 302 and "/login" in answer["Location"]


def test_a_lapsed_subscription_says_how_to_renew_it(client, product, international, clerk, provider):
    from listings.models import PricePlan
    from tests.factories import PricePlanFactory

    fund(international, clerk, "60.00")
    plan = PricePlanFactory(product=product, kind=PricePlan.Kind.SUBSCRIPTION, period="month", amount=D("50.00"))
    entitlement = place(international, product, plan).entitlement
    orders.order_confirm_delivery(order=entitlement.order, actor=provider)
    orders.subscriptions_renew_due(now=entitlement.ends_at)
    login_as(client, international)
    text = main(client.get("/portal/entitlements/"))
    assert "Lapsed: renewal unpaid" in text and "A deposit by" in text


def test_the_buyer_stops_a_subscription_from_the_portal(client, product, international, clerk, rival_buyer):
    from listings.models import PricePlan
    from tests.factories import PricePlanFactory

    fund(international, clerk, "500.00")
    plan = PricePlanFactory(product=product, kind=PricePlan.Kind.SUBSCRIPTION, period="month", amount=D("50.00"))
    entitlement = place(international, product, plan).entitlement
    login_as(client, rival_buyer)
    assert client.post(f"/portal/entitlements/{entitlement.pk}/stop").status_code == 404
    login_as(client, international)
    assert "Stop renewing" in main(client.get("/portal/entitlements/"))
    answer = client.post(f"/portal/entitlements/{entitlement.pk}/stop", follow=True)
    assert "will not renew" in answer.content.decode() and "Does not renew" in main(answer)
    entitlement.refresh_from_db()
    assert not entitlement.renews
