"""The buy flow through the portal: the product page's Buy button per plan, the order form, the review (the
compliance verdict with its reasons, the amounts with the buyer's fees, the licence, the stated use), the
confirmation (one order, however often it is sent) and every refusal shown as a page, never a server error.

The package's fixture checks the ledger's invariants after each test."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compliance import services as compliance
from compliance.models import RestrictedParty
from listings.models import ListingStatus, PricePlan, Revision
from settlements.models import AccessRequest, FeeSchedule, Order
from settlements.services import access
from settlements.services.ledger import account_for
from tests.compliance.factories import with_pi
from tests.factories import MemberFirmFactory, PricePlanFactory, listed_product, login_as, member
from tests.settlements.factories import fund
from tests.settlements.portal import (
    buy,
    buy_url,
    confirm,
    confirm_data,
    main,
    one_off,
    order_data,
    review,
)

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def product(provider, reviewer):
    return listed_product(provider, reviewer, title_en="Global shipping lanes", title_zh="全球航线数据")


@pytest.fixture
def buyer(client, international):
    international.full_name = "Carol Tan"
    international.save(update_fields=["full_name"])
    login_as(client, international)
    return international


def cash(user, kind="cash", currency="CNY") -> Decimal:
    return account_for(firm=user.membership.firm, kind=kind, currency=currency).balance


class TestTheProductPage:
    def test_a_buyer_sees_a_buy_button_per_plan(self, client, buyer, product):
        plan = one_off(product)
        html = client.get(f"/portal/products/{product.pk}/").content.decode()
        for each in product.plans.all():
            assert f'href="{buy_url(product, each)}"' in html
        assert html.count('data-plan="') == 2 and f'data-plan="{plan.pk}"' in html

    @pytest.mark.parametrize("who", ["provider", "clerk", "analyst"])
    def test_no_buy_button_for_the_provider_staff_or_an_analyst(self, client, product, who, request, international):
        user = member(international.membership.firm, "analyst") if who == "analyst" else request.getfixturevalue(who)
        login_as(client, user)
        html = client.get(f"/portal/products/{product.pk}/").content.decode()
        assert "/buy/" not in html
        if who == "analyst":
            assert "analysts read" in html

    def test_a_board_the_firm_sees_but_may_not_trade_on(self, client, buyer, product):
        from guardian.shortcuts import remove_perm

        from tests.factories import board

        remove_perm("exchange.trade_on_board", buyer.membership.firm.group, board("international"))
        html = client.get(f"/portal/products/{product.pk}/").content.decode()
        assert "/buy/" not in html and "not admitted to trade on this board" in html


class TestTheBuyFlow:
    def test_a_cleared_order_from_the_product_page_to_the_order_page(self, client, buyer, product, clerk, superuser):
        # given fees on both sides, cash, and a one-off plan
        FeeSchedule.objects.create(
            board=product.board, currency="CNY", effective_from=timezone.localdate() - timedelta(days=1),
            provider_rate_bps=250, buyer_rate_bps=100, buyer_fixed=D("5.00"),
        )  # fmt: skip
        fund(buyer, clerk, "5000.00")
        plan = one_off(product, "999.99")
        # when the buyer opens the order form from the Buy button
        form = client.get(buy_url(product, plan))
        assert form.status_code == 200
        assert "Once" in main(form) and "999.99 CNY" in main(form)
        # and reviews the order
        page = review(client, product, plan)
        assert page.status_code == 200
        body = main(page)
        # then the review shows the verdict with its reasons, the amounts with the buyer's fee, the licence and use
        assert page.context["verdict"].status == "cleared" and "Cleared" in body
        assert page.context["reasons"] and page.context["reasons"][0]["text"] in body
        assert "999.99" in body and "15.00" in body and "1014.99 CNY" in body
        assert "25.00" not in body  # the provider's fee is the provider's business
        assert "For the buyer's internal analytics only." in page.content.decode().replace("&#x27;", "'")
        assert "Market sizing for our Singapore desk." in body
        assert "5000.00 CNY" in body and "3985.01 CNY" in body  # cash now, and after the order
        assert not Order.objects.exists()  # a review writes nothing
        # when the buyer confirms
        response = confirm(client, product, plan, confirm_data(page))
        # then one order is placed, released, and the browser is sent to its page
        order = Order.objects.get()
        assert response.status_code == 303 and response["Location"] == f"/portal/orders/{order.pk}/"
        assert order.status == "released" and order.total == D("1014.99") and order.placed_by == buyer
        assert cash(buyer) == D("3985.01") and cash(buyer, "escrow") == D("1014.99")
        detail = client.get(response["Location"])
        body = main(detail)
        assert "is placed and released for delivery" in body
        assert order.reference in body and "Released for delivery" in body
        assert "Order placed" in body and "Carol Tan" in body and "1014.99 CNY held in escrow" in body
        assert "Released for delivery · The exchange's compliance gate" in body
        assert "#" + str(buyer.pk) not in body

    def test_a_held_order_is_explained_then_placed_and_held(self, client, buyer, provider, reviewer, clerk):
        product = with_pi(listed_product(provider, reviewer), 150_000)
        fund(buyer, clerk)
        plan = one_off(product)
        page = review(client, product, plan)
        body = main(page)
        assert page.context["held"] and "Held" in body
        assert "Standard contract required: not on file" in body
        assert "waits in escrow" in body
        order = buy(client, product, plan)
        assert order.status == "compliance_hold"
        detail = main(client.get(f"/portal/orders/{order.pk}/"))
        assert "Held by compliance" in detail and "Standard contract required: not on file" in detail
        assert "Cancel the order" in detail  # the buyer may cancel while it is held

    def test_a_subscription_shows_its_first_period_and_a_metered_plan_its_budget(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        annual = product.plans.get(kind="subscription")
        page = review(client, product, annual)
        assert "First period" in main(page) and "12000.00 CNY" in main(page)
        metered = PricePlanFactory(
            product=product, name_en="Per call", kind="metered", period="month", amount=D("100.00"),
            included_calls=1000, unit_price=D("0.0125"),
        )  # fmt: skip
        form = client.get(buy_url(product, metered))
        assert 'name="usage_budget"' in form.content.decode() and "0.0125 CNY" in main(form)
        missing = review(client, product, metered)
        assert missing.status_code == 400 and "usage_budget" in missing.context["form"].errors
        order = buy(client, product, metered, usage_budget="250.00")
        assert order.usage_budget == D("250.00") and order.total == D("350.00")

    def test_change_goes_back_to_the_form_with_what_was_typed(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        plan = one_off(product)
        response = client.post(buy_url(product, plan), {**order_data(intended_use="Port analytics."), "edit": "1"})
        assert response.status_code == 200 and "Port analytics." in response.content.decode()
        assert response.context["form"].errors == {}

    def test_form_errors_are_shown_on_the_form(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        plan = one_off(product)
        response = review(client, product, plan, intended_use="   ", delivery_mode="sandbox")
        assert response.status_code == 400
        assert set(response.context["form"].errors) == {"intended_use", "delivery_mode"}
        assert not Order.objects.exists()


class TestOneOrderPerConfirmation:
    def test_the_same_confirmation_twice_places_one_order(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        plan = one_off(product)
        data = confirm_data(review(client, product, plan))
        first = confirm(client, product, plan, data)
        second = confirm(client, product, plan, data)
        order = Order.objects.get()
        assert first["Location"] == second["Location"] == f"/portal/orders/{order.pk}/"
        assert "No second order was placed" in main(client.get(second["Location"]))
        assert cash(buyer) == D("99000.00")

    def test_a_confirmation_whose_first_was_placed_by_another_process_finds_its_order(
        self, client, buyer, product, clerk
    ):
        fund(buyer, clerk)
        plan = one_off(product)
        data = confirm_data(review(client, product, plan))
        first = confirm(client, product, plan, data)
        # given a second submission the session has not heard of (it reached another process at the same moment)
        session = client.session
        tokens = session["settlements_order_tokens"]
        tokens[data["token"]]["order"] = None
        session["settlements_order_tokens"] = tokens
        session.save()
        # when it is confirmed, the token's row in the database says the order is placed
        second = confirm(client, product, plan, data)
        assert second.status_code == 303 and second["Location"] == first["Location"]
        assert Order.objects.count() == 1

    def test_amounts_changed_since_the_review_send_the_buyer_back_to_it(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        plan = one_off(product)
        data = confirm_data(review(client, product, plan))
        FeeSchedule.objects.create(
            board=product.board, currency="CNY", effective_from=timezone.localdate(), provider_rate_bps=250,
            buyer_rate_bps=500, buyer_fixed=D("100.00"),
        )  # fmt: skip
        response = confirm(client, product, plan, data)
        assert response.status_code == 409 and "Check the order once more" in main(response)
        assert not Order.objects.exists()

    def test_another_session_with_the_token_reviews_again(self, client, buyer, product, clerk):
        from django.test import Client

        fund(buyer, clerk)
        plan = one_off(product)
        data = confirm_data(review(client, product, plan))
        other = Client()
        login_as(other, buyer)
        response = confirm(other, product, plan, data)
        assert response.status_code == 409 and "Check the order once more" in main(response)
        assert not Order.objects.exists()
        # a changed field with this session's token is not the reviewed order either
        response = confirm(client, product, plan, {**data, "intended_use": "Something else."})
        assert response.status_code == 409 and not Order.objects.exists()

    def test_the_licence_must_be_accepted(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        plan = one_off(product)
        data = confirm_data(review(client, product, plan))
        del data["accept_licence"]
        response = confirm(client, product, plan, data)
        assert response.status_code == 400 and "Accept the licence" in main(response)
        assert response.context["confirm"]["token"].value() == data["token"]
        assert not Order.objects.exists()


class TestRefusals:
    def test_insufficient_funds_on_the_review_and_on_the_confirmation(self, client, buyer, product, clerk):
        fund(buyer, clerk, "10.00")
        plan = one_off(product)
        page = review(client, product, plan)
        assert page.status_code == 200 and "990.00 CNY short" in main(page)
        assert "buy-confirm" not in page.content.decode() and "/confirm" not in page.content.decode()
        assert "/portal/deposits/" in page.content.decode()
        # a confirmation sent anyway (cash spent in another tab meanwhile) is refused with the way to deposit
        response = confirm(client, product, plan, confirm_data(page))
        assert response.status_code == 422 and response.context["refusal"]["code"] == "insufficient_funds"
        assert "Not enough cash" in main(response) and "/portal/deposits/" in response.content.decode()
        assert not Order.objects.exists() and cash(buyer) == D("10.00")

    def test_a_currency_the_firm_does_not_hold(self, client, buyer, product):
        response = client.get(buy_url(product, one_off(product)))
        assert response.status_code == 422 and response.context["refusal"]["code"] == "currency_not_held"
        assert "deposit some first" in main(response) and "/portal/deposits/" in response.content.decode()

    def test_an_access_request_first(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
        response = client.get(buy_url(product, one_off(product)))
        assert response.status_code == 409 and response.context["refusal"]["code"] == "access_request_required"
        assert f"/portal/products/{product.pk}/access-request" in response.content.decode()
        html = client.get(f"/portal/products/{product.pk}/").content.decode()
        assert "/buy/" not in html and f"/portal/products/{product.pk}/access-request" in html

    def test_own_product(self, client, provider, product):
        login_as(client, provider)
        response = client.get(buy_url(product, one_off(product)))
        assert response.status_code == 403 and "your own firm's product" in main(response)
        assert f"/portal/my-products/{product.pk}/edit" in response.content.decode()

    def test_a_restricted_party_is_refused_plainly(self, client, buyer, product, clerk, superuser):
        fund(buyer, clerk)
        plan = one_off(product)
        compliance.party_save(
            party=RestrictedParty(name="OVERSEAS BUYER PTE LTD", country="SG", source_list="Test list"), actor=superuser
        )
        page = review(client, product, plan)
        assert page.status_code == 403 and "restricted-party list" in main(page)
        assert "/confirm" not in page.content.decode()
        assert not Order.objects.exists()

    def test_prohibited_shows_the_reasons_and_no_confirmation(self, client, provider, reviewer, clerk, officer):
        # US-origin data for a buyer in Hong Kong, whose review an officer refused (R4): the rules prohibit it
        product = listed_product(provider, reviewer)
        Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
        product.refresh_from_db()
        from settlements.services import orders
        from tests.factories import admit

        hk = member(admit(MemberFirmFactory(country="HK", role="buyer"), "international"), "trader")
        fund(hk, clerk)
        plan = one_off(product)
        held = orders.order_place(
            actor=hk, product_id=product.pk, plan_id=plan.pk, delivery_mode="file", intended_use="Research."
        )
        compliance.case_refuse(case=held.case, actor=officer, resolution="Covered data for a country of concern.")
        login_as(client, hk)
        page = review(client, product, plan)
        assert page.status_code == 200 and page.context["prohibited"]
        assert "Prohibited" in main(page) and "R4" in main(page) and "cannot be ordered" in main(page)
        assert "/confirm" not in page.content.decode()
        response = confirm(client, product, plan, confirm_data(page))
        assert response.status_code == 422 and response.context["refusal"]["code"] == "prohibited"
        assert "prohibit this trade" in main(response) and response.context["refusal"]["reasons"]
        assert Order.objects.count() == 1

    def test_a_plan_retired_or_a_product_suspended_between_review_and_confirmation(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        plan = one_off(product)
        data = confirm_data(review(client, product, plan))
        PricePlan.objects.filter(pk=plan.pk).update(is_active=False)
        response = confirm(client, product, plan, data)
        assert response.status_code == 409 and "retired" in main(response)
        PricePlan.objects.filter(pk=plan.pk).update(is_active=True)
        product.listing_status = ListingStatus.SUSPENDED
        product.save(update_fields=["listing_status"])
        response = confirm(client, product, plan, data)
        assert response.status_code == 409 and "suspended" in main(response)
        assert not Order.objects.exists()

    def test_another_firms_private_offer_is_not_there(self, client, buyer, product, clerk):
        fund(buyer, clerk)
        other = MemberFirmFactory(country="SG", role="buyer")
        offer = one_off(product, buyer_firm=other, buyer_code=other.lei)
        response = client.get(buy_url(product, offer))
        assert response.status_code == 422 and response.context["refusal"]["code"] == "plan_not_found"

    def test_analysts_staff_and_strangers(self, client, international, product, clerk):
        analyst = member(international.membership.firm, "analyst")
        plan = one_off(product)
        login_as(client, analyst)
        refused = client.get(buy_url(product, plan))
        assert refused.status_code == 403 and "administrators and traders" in main(refused)
        assert client.post(buy_url(product, plan) + "/confirm", {"token": "x"}).status_code == 403
        login_as(client, clerk)
        assert client.get(buy_url(product, plan)).status_code == 403
        client.logout()
        response = client.get(buy_url(product, plan))
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")

    def test_a_product_the_firm_may_not_see_is_not_found(self, client, domestic, product):
        login_as(client, domestic)  # admitted to the domestic board only
        assert client.get(buy_url(product, one_off(product))).status_code == 404
        assert client.get("/portal/products/999999/buy/1").status_code == 404


class TestAnApprovedAccessRequest:
    def test_the_order_keeps_the_approved_use(self, client, buyer, provider, product, clerk):
        fund(buyer, clerk)
        Revision.objects.filter(pk=product.listed_revision_id).update(requires_approval=True)
        request = access.access_request_create(actor=buyer, product_id=product.pk, intended_use="Credit scoring.")
        access.access_request_approve(request=request, actor=provider, reason="Fine.")
        plan = one_off(product)
        form = client.get(buy_url(product, plan))
        assert 'name="intended_use"' not in form.content.decode() and "Credit scoring." in main(form)
        order = buy(client, product, plan, intended_use=None)
        assert order.intended_use == "Credit scoring." and order.access_request == request
        request.refresh_from_db()
        assert request.status == AccessRequest.Status.USED
        # a second submission of that confirmation finds the order, though the approval is spent
        assert Order.objects.count() == 1


def test_the_review_in_chinese(client, buyer, product, clerk):
    fund(buyer, clerk)
    plan = one_off(product)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/portal/"})
    page = review(client, product, plan)
    body = main(page)
    assert page.status_code == 200
    for word in ("全球航线数据", "交易服务费", "资金托管", "授权许可", "使用目的", "价格方案", "一次性"):
        assert word in body, word
    assert "仅限买方内部分析使用。" in body


@pytest.mark.django_db(transaction=True)
def test_a_double_click_sends_two_confirmations_at_once_and_one_order_is_placed(client, buyer, product, clerk):
    import threading

    from django.db import connections
    from django.test import Client

    # given one browser session that reviewed the order, and its confirmation sent twice at the same moment
    fund(buyer, clerk)
    plan = one_off(product)
    data = confirm_data(review(client, product, plan))
    clients = [client, Client()]
    clients[1].cookies = client.cookies
    barrier = threading.Barrier(2)
    statuses, errors = [], []

    def send(browser):
        try:
            barrier.wait(timeout=10)
            statuses.append(confirm(browser, product, plan, data).status_code)
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(browser,)) for browser in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # then one order, one escrow hold, and both answers send the browser on (to the order, or to the orders)
    assert errors == [] and statuses == [303, 303]
    assert Order.objects.count() == 1 and cash(buyer, "escrow") == D("1000.00")


def test_a_refusal_that_says_see_details_shows_them(client, buyer, product, clerk):
    # given a plan in a currency the board does not settle in (the order's details say so, not its message)
    from exchange.models import Board

    fund(buyer, clerk)
    plan = one_off(product)
    Board.objects.filter(pk=product.board_id).update(settlement_currencies=["USD"])
    response = review(client, product, plan)
    assert response.context["refusal"]["code"] == "validation_error"
    assert "The board does not settle in this plan's currency." in main(response)
    assert not Order.objects.exists()
