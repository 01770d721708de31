"""Trading through the doors people use: a buyer abroad with a deposit booked by a clerk buys a product that
compliance holds (the review shows the verdict, the fees and the licence); a compliance officer clears the case in
the admin; the order is released; the provider confirms delivery in the portal; the buyer accepts; and both firms'
balances show the escrow, the fee and the payable. No JavaScript is needed on any of these pages."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from exchange import roles
from listings.models import Revision
from settlements.models import Order
from settlements.services.ledger import account_for
from tests.browser.pages import logged_in_page
from tests.factories import MemberFirmFactory, UserFactory, admit, ensure_categories, listed_product, member
from tests.settlements.factories import fund
from tests.settlements.portal import one_off

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(transactional_db, boards, superuser):
    ensure_categories()
    groups = roles.sync_staff_roles()
    provider_firm = admit(MemberFirmFactory(legal_name_en="Hangzhou Panel Data Co.", role="provider"), "international")
    buyer_firm = admit(
        MemberFirmFactory(legal_name_en="Kowloon Risk Ltd.", country="HK", role="buyer"), "international"
    )
    staff = {}
    for name, role in (("reviewer", roles.LISTING_REVIEWERS), ("officer", roles.COMPLIANCE_OFFICERS),
                       ("clerk", roles.SETTLEMENT_CLERKS)):  # fmt: skip
        staff[name] = UserFactory(email=f"{name}@exchange.example", is_staff=True)
        staff[name].groups.add(groups[role])
    return {
        "provider": member(provider_firm, "firm_admin", "paul@hangzhou.example"),
        "buyer": member(buyer_firm, "trader", "bea@kowloon.example"),
        **staff,
    }


def test_a_held_order_from_the_buy_button_to_the_providers_payable(launch_browser, people, live_server, tmp_path: Path):
    from playwright.sync_api import expect

    # given a product holding data of US origin, which the gate holds for a compliance officer's review when it goes
    # to Hong Kong, and the buyer's deposit booked by a settlement clerk
    product = listed_product(people["provider"], people["reviewer"], title_en="Consumer panel")
    Revision.objects.filter(pk=product.listed_revision_id).update(origin_countries=["US"])
    plan = one_off(product, "1000.00")
    fund(people["buyer"], people["clerk"], "5000.00")
    base = live_server.url
    with launch_browser() as browser:
        # --- the buyer: Buy, the order form, the review, confirm -------------------------------------------------
        context, page = logged_in_page(browser, base, people["buyer"].email, height=1400)
        page.goto(f"{base}/portal/products/{product.pk}/")
        page.locator(f"a[data-plan='{plan.pk}']").click()
        page.locator("input[name=delivery_mode][value=file]").check()
        page.locator("textarea[name=intended_use]").fill("Credit risk models for Hong Kong importers.")
        page.locator("form.product-form button[type=submit]").click()
        verdict = page.locator("#compliance-verdict")
        expect(verdict).to_contain_text("Held")
        expect(verdict).to_contain_text("compliance officer")
        expect(page.locator("#amount")).to_contain_text("1000.00 CNY")
        expect(page.locator("#licence")).to_contain_text("For the buyer's internal analytics only.")
        page.screenshot(path=tmp_path / "1-review.png", full_page=True)
        page.locator("input[name=accept_licence]").check()
        page.locator("#confirm button[type=submit]").click()
        expect(page.locator("main")).to_contain_text("held by compliance")
        expect(page.locator("#timeline")).to_contain_text("Held by compliance")
        page.screenshot(path=tmp_path / "2-order-held.png", full_page=True)
        context.close()
        order = Order.objects.get()
        assert order.status == "compliance_hold" and order.case is not None

        # --- the compliance officer clears the case in the admin ------------------------------------------------
        context, page = logged_in_page(browser, base, people["officer"].email, admin=True, width=1400)
        page.goto(f"{base}/admin/compliance/compliancecase/?status__exact=open")
        page.locator("#result_list input.action-select").first.check()
        page.locator("select[name=action]").select_option("clear")
        page.locator("button[name=index]").click()
        page.locator("textarea[name=resolution]").fill("The buyer's safeguards are adequate for this panel.")
        page.locator("#content-main form [type=submit]").first.click()
        expect(page.locator("ul.messagelist")).to_contain_text("1 case cleared")
        context.close()
        order.refresh_from_db()
        assert order.status == "released"  # the outbox's relay ran after the officer's commit

        # --- the provider confirms delivery from its sales ----------------------------------------------------------
        context, page = logged_in_page(browser, base, people["provider"].email, height=1400)
        page.goto(f"{base}/portal/sales/")
        page.locator(f"tr[data-order='{order.pk}'] a").click()
        page.get_by_role("link", name="Confirm delivery").click()
        page.locator("textarea[name=note]").fill("Delivered by SFTP to the buyer's drop.")
        page.locator("form.product-form button[type=submit]").click()
        expect(page.locator("#timeline")).to_contain_text("Delivered by SFTP")
        context.close()

        # --- the buyer accepts ---------------------------------------------------------------------------------------
        context, page = logged_in_page(browser, base, people["buyer"].email, height=1400)
        page.goto(f"{base}/portal/orders/{order.pk}/")
        expect(page.locator("#timeline")).to_contain_text("Hangzhou Panel Data Co.")
        page.get_by_role("link", name="Accept the delivery").click()
        page.locator("form.product-form button[type=submit]").click()
        expect(page.locator(".badge").first).to_contain_text("Settled")
        page.goto(f"{base}/portal/balances/")
        expect(page.locator("tr[data-currency=CNY]")).to_contain_text("4000.00")
        page.screenshot(path=tmp_path / "3-buyer-balances.png", full_page=True)
        context.close()

        # --- the provider's payable: the price net of the exchange's fee ------------------------------------------
        context, page = logged_in_page(browser, base, people["provider"].email)
        page.goto(f"{base}/portal/balances/")
        expect(page.locator("tr[data-currency=CNY]")).to_contain_text("992.00")
        page.screenshot(path=tmp_path / "4-provider-balances.png", full_page=True)
        context.close()
    firm = people["provider"].membership.firm
    assert account_for(firm=firm, kind="payable", currency="CNY").balance == Decimal("992.00")
