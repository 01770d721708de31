"""Delivery through the doors a buyer uses: on its entitlements page it downloads the file it bought (the browser
saves exactly the dataset's bytes), makes the data API's credential for its API entitlement and calls the gateway
with it, and runs an aggregate query in the sandbox, whose answer marks the cells suppressed for having too few
individuals."""

from __future__ import annotations

from pathlib import Path

import pytest

from listings.models import Dataset, Revision
from settlements.models import Download, Order
from tests.browser.pages import logged_in_page
from tests.factories import MemberFirmFactory, UserFactory, admit, ensure_categories, listed_product, member
from tests.settlements.factories import fund
from tests.settlements.portal import one_off
from tests.settlements.test_orders import place

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(transactional_db, boards, superuser):
    from exchange import roles

    ensure_categories()
    groups = roles.sync_staff_roles()
    provider_firm = admit(MemberFirmFactory(legal_name_en="Ningbo Port Data Co.", role="provider"), "international")
    buyer_firm = admit(
        MemberFirmFactory(legal_name_en="Harbour Analytics Pte.", country="SG", role="buyer"), "international"
    )
    staff = {}
    for name, role in (("reviewer", roles.LISTING_REVIEWERS), ("clerk", roles.SETTLEMENT_CLERKS)):
        staff[name] = UserFactory(email=f"{name}@exchange.example", is_staff=True)
        staff[name].groups.add(groups[role])
    return {
        "provider": member(provider_firm, "firm_admin", "ning@ningbo.example"),
        "buyer": member(buyer_firm, "trader", "hana@harbour.example"),
        **staff,
    }


def test_a_buyer_downloads_its_file(launch_browser, people, live_server, tmp_path: Path):
    from playwright.sync_api import expect

    # given a product delivered as a file, bought and released
    product = listed_product(people["provider"], people["reviewer"], title_en="Port calls")
    Revision.objects.filter(pk=product.listed_revision_id).update(delivery_modes=["file"])
    fund(people["buyer"], people["clerk"], "5000.00")
    order = place(people["buyer"], product, one_off(product, "100.00"))
    dataset = Dataset.objects.get(revision_id=order.revision_id)
    base = live_server.url
    with launch_browser() as browser:
        context, page = logged_in_page(browser, base, people["buyer"].email, height=1200)
        page.goto(f"{base}/portal/entitlements/")
        expect(page.locator("main")).to_contain_text("Port calls")
        # when the buyer downloads it
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download").click()
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        page.screenshot(path=tmp_path / "1-entitlements.png", full_page=True)
        context.close()
    # then the browser saved the dataset's bytes, the download is logged and the order delivered
    assert saved.read_bytes() == dataset.file.open("rb").read()
    assert Download.objects.get().completed_at is not None
    assert Order.objects.get(pk=order.pk).status == "delivered"
