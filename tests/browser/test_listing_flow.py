"""The listing workflow through the doors people use: a provider creates and submits a product in the
portal, a reviewer approves it in the admin, and after the public notice a buyer abroad finds it by a
Chinese search term."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from exchange import roles
from tests.browser.pages import logged_in_page
from tests.factories import (
    DATASET_CSV,
    SAMPLE_CSV,
    MemberFirmFactory,
    UserFactory,
    admit,
    ensure_categories,
    member,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLE_EN = "Ningbo port reefer container flows"
TITLE_ZH = "宁波港冷藏集装箱流向数据"


@pytest.fixture
def people(transactional_db, boards, superuser):
    ensure_categories()
    provider_firm = admit(MemberFirmFactory(legal_name_en="Zhoushan Port Data Co.", role="provider"), "international")
    buyer_firm = admit(
        MemberFirmFactory(legal_name_en="Lisbon Cold Chain Lda.", country="PT", role="buyer"), "international"
    )
    reviewer = UserFactory(email="rita@exchange.example", is_staff=True)
    reviewer.groups.add(roles.sync_staff_roles()[roles.LISTING_REVIEWERS])
    return {
        "provider": member(provider_firm, "trader", "paul@zhoushan.example"),
        "buyer": member(buyer_firm, "trader", "bea@lisbon.example"),
        "reviewer": reviewer,
    }


def test_provider_submits_reviewer_approves_buyer_finds_it_in_chinese(
    launch_browser, people, live_server, tmp_path: Path
):
    from playwright.sync_api import expect

    from listings import services
    from listings.models import DataProduct, Revision

    sample = tmp_path / "sample.csv"
    sample.write_bytes(SAMPLE_CSV)
    dataset = tmp_path / "reefer-flows.csv"
    dataset.write_bytes(DATASET_CSV)
    base = live_server.url
    with launch_browser() as browser:
        # --- the provider creates, completes and submits the product in the portal ------------------------
        context, page = logged_in_page(browser, base, people["provider"].email)
        page.goto(f"{base}/portal/my-products/new")
        form = page.locator("form.product-form")
        form.locator("[name=title_en]").fill(TITLE_EN)
        form.locator("[name=title_zh]").fill(TITLE_ZH)
        form.locator("[name=summary_en]").fill("Weekly reefer container flows through Ningbo-Zhoushan.")
        form.locator("[name=summary_zh]").fill("宁波舟山港每周冷藏集装箱流向。")
        form.locator("[name=category]").select_option(label="Supply chain and logistics")
        form.locator("[name=origin_countries]").fill("CN")
        form.locator("[name=delivery_modes][value=file]").check()
        form.locator("[name=licence_en]").fill("Internal analytics only.")
        form.locator("[name=licence_zh]").fill("仅限内部分析。")
        form.locator("[name=purposes]").fill("supply chain planning")
        form.locator("[name=territories]").fill("worldwide")
        for i, (name, kind) in enumerate([("hs_code", "string"), ("month", "date"), ("value_usd", "decimal"),
                                          ("origin", "country")]):  # fmt: skip
            form.locator(f"[name=dictionary-{i}-name]").fill(name)
            form.locator(f"[name=dictionary-{i}-type]").select_option(kind)
        form.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"/portal/my-products/\d+/edit$"))
        product_id = int(re.search(r"/my-products/(\d+)/edit", page.url).group(1))

        page.set_input_files("input[name=sample]", str(sample))
        page.get_by_role("button", name="Upload the sample").click()
        expect(page.locator("main")).to_contain_text("The sample is checked against the dictionary")

        # file delivery hands over the data itself: the dataset, checked (at once here: no task queue)
        page.set_input_files("input[name=dataset]", str(dataset))
        page.get_by_role("button", name="Upload the dataset").click()
        expect(page.locator("#dataset .dataset-status")).to_contain_text("Valid")

        plan = page.locator("form.plan-form")
        plan.locator("[name=name_en]").fill("Annual")
        plan.locator("[name=kind]").select_option("subscription")
        plan.locator("[name=period]").select_option("year")
        plan.locator("[name=currency]").select_option("USD")
        plan.locator("[name=amount]").fill("4800.00")
        plan.get_by_role("button", name="Add the plan").click()
        expect(page.locator("main")).to_contain_text("4800")

        page.get_by_role("button", name="Submit for registration review").click()
        expect(page.locator("main")).to_contain_text("Submitted")
        page.screenshot(path=tmp_path / "1-provider-submitted.png", full_page=True)
        context.close()

        # --- the reviewer starts the review and approves it in the admin ------------------------------------
        context, page = logged_in_page(browser, base, people["reviewer"].email, admin=True, width=1400)
        page.goto(f"{base}/admin/listings/revision/")
        row = page.locator("#result_list tr", has_text=TITLE_EN)
        row.locator("input.action-select").check()
        page.locator("select[name=action]").select_option("start_review")
        page.locator("button[name=index]").click()
        expect(page.locator("ul.messagelist")).to_contain_text("Review started")

        row = page.locator("#result_list tr", has_text=TITLE_EN)
        row.locator("input.action-select").check()
        page.locator("select[name=action]").select_option("approve")
        page.locator("button[name=index]").click()
        page.locator("textarea[name=notes]").fill("Registration checked.")
        page.locator("input[type=submit]").click()
        expect(page.locator("ul.messagelist")).to_contain_text("approved for public notice")
        page.screenshot(path=tmp_path / "2-reviewer-approved.png", full_page=True)
        context.close()

        # --- the public notice ends with no objection: the periodic task lists it ---------------------------
        revision = Revision.objects.get(product_id=product_id, status="in_notice")
        Revision.objects.filter(pk=revision.pk).update(notice_ends_at=timezone.now() - timedelta(seconds=1))
        assert services.notice_conclude(revision_id=revision.pk) is not None
        assert DataProduct.objects.get(pk=product_id).listing_status == "listed"

        # --- a buyer abroad finds it by a Chinese term ------------------------------------------------------
        context, page = logged_in_page(browser, base, people["buyer"].email)
        page.goto(f"{base}/portal/catalogue/?q=冷藏集装箱")
        card = page.locator("main").get_by_text(TITLE_EN)
        expect(card).to_be_visible()
        card.click()
        page.wait_for_url(re.compile(rf"/portal/products/{product_id}/$"))
        expect(page.locator("main")).to_contain_text("supply chain planning")  # licence terms before buying
        page.screenshot(path=tmp_path / "3-buyer-found.png", full_page=True)
        context.close()
