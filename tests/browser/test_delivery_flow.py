"""Delivery through the doors a buyer uses: on its entitlements page it downloads the file it bought (the browser
saves exactly the dataset's bytes), makes the data API's credential for its API entitlement and calls the gateway
with it, and runs an aggregate query in the sandbox, whose answer marks the cells suppressed for having too few
individuals."""

from __future__ import annotations

from pathlib import Path

import pytest

from listings.models import Dataset
from settlements.models import Download, Order, SandboxQuery, Usage
from tests.browser.pages import logged_in_page
from tests.factories import (
    MemberFirmFactory,
    UserFactory,
    admit,
    ensure_categories,
    listed_product,
    member,
    valid_dataset,
)
from tests.settlements.factories import fund
from tests.settlements.portal import one_off
from tests.settlements.test_orders import place
from tests.settlements.test_sandbox import THRESHOLD_ROWS, csv_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(transactional_db, boards, superuser):
    from exchange import roles

    ensure_categories()
    groups = roles.sync_staff_roles()
    provider_firm = admit(MemberFirmFactory(legal_name_en="Ningbo Port Data Co.", role="provider"), "international")
    buyer_firm = admit(
        MemberFirmFactory(legal_name_en="Harbour Analytics Co.", country="CN", role="buyer"), "international"
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


def test_a_buyer_downloads_its_file_calls_the_data_api_and_queries_the_sandbox(
    launch_browser, people, live_server, tmp_path: Path
):
    from playwright.sync_api import expect

    # given a product delivered as a file, by API and in the sandbox, whose dataset has 9, 10 and 11 people in three
    # countries (the sandbox's minimum is 10), bought three times (once each way) by a mainland firm (no export: each
    # order released at once)
    product = listed_product(
        people["provider"], people["reviewer"], title_en="Port calls", delivery_modes=["file", "api", "sandbox"]
    )
    revision = product.listed_revision
    Dataset.objects.filter(revision=revision).delete()
    valid_dataset(revision, uploaded_by=people["provider"], content=csv_of(THRESHOLD_ROWS))
    fund(people["buyer"], people["clerk"], "5000.00")
    file_order = place(people["buyer"], product, one_off(product, "100.00"))
    api_order = place(people["buyer"], product, one_off(product, "120.00"), delivery_mode="api")
    sandbox_order = place(people["buyer"], product, one_off(product, "80.00"), delivery_mode="sandbox")
    dataset = Dataset.objects.get(revision_id=file_order.revision_id)
    base = live_server.url
    with launch_browser() as browser:
        context, page = logged_in_page(browser, base, people["buyer"].email, height=1200)
        page.goto(f"{base}/portal/entitlements/")
        expect(page.locator("main")).to_contain_text("Port calls")
        # when the buyer downloads the file
        file_row = page.locator(f"tr[data-entitlement='{file_order.entitlement.pk}']")
        with page.expect_download() as download_info:
            file_row.get_by_role("button", name="Download").click()
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        page.screenshot(path=tmp_path / "1-entitlements.png", full_page=True)
        # and makes the API entitlement's data credential, shown once
        api_row = page.locator(f"tr[data-entitlement='{api_order.entitlement.pk}']")
        api_row.get_by_role("button", name="Make a credential").click()
        raw_key = page.locator("#raw-data-key").inner_text().strip()
        assert raw_key.startswith("dxd_")
        page.screenshot(path=tmp_path / "2-credential.png", full_page=True)
        # and calls the data gateway with it
        answer = page.request.get(
            f"{base}/data/v1/{api_order.entitlement.pk}/rows?limit=2", headers={"Authorization": f"Data-Key {raw_key}"}
        )
        assert answer.status == 200, answer.text()
        rows = answer.json()
        # the credential is not a session: without it the gateway refuses
        refused = page.request.get(f"{base}/data/v1/{api_order.entitlement.pk}/rows?limit=2")
        assert refused.status == 401
        page.goto(f"{base}/portal/entitlements/")
        # the usage meter shows the call
        expect(page.locator(f"tr[data-entitlement='{api_order.entitlement.pk}'] .api-usage")).to_contain_text(
            "1 call this period"
        )
        page.screenshot(path=tmp_path / "3-usage.png", full_page=True)
        # and opens the sandbox: the number of rows and the sum of their values, by country
        sandbox_row = page.locator(f"tr[data-entitlement='{sandbox_order.entitlement.pk}']")
        sandbox_row.get_by_role("link", name="Open the sandbox").click()
        form = page.locator("#sandbox-query")
        form.locator("select[name=fn_0]").select_option("count")
        form.locator("select[name=fn_1]").select_option("sum")
        form.locator("select[name=field_1]").select_option("value_usd")
        form.locator("input[name=group_by][value=origin]").check()
        form.get_by_role("button", name="Run the query").click()
        answer = page.locator("#answer")
        # the countries with 10 and 11 people are answered; the one with 9 is suppressed, and marked so
        expect(answer.locator("table")).to_contain_text("DE")
        expect(answer.locator("table")).to_contain_text("JP")
        expect(answer.locator("table")).not_to_contain_text("CN")
        expect(page.locator("#suppressed")).to_contain_text("1 row suppressed: fewer than 10 individuals.")
        expect(answer.locator("tr.suppressed")).to_be_visible()
        expect(answer.locator("svg rect").first).to_be_visible()
        page.screenshot(path=tmp_path / "4-sandbox.png", full_page=True)
        context.close()
    # then the browser saved the dataset's bytes, the download is logged and the file order delivered
    assert saved.read_bytes() == dataset.file.open("rb").read()
    assert Download.objects.get().completed_at is not None
    assert Order.objects.get(pk=file_order.pk).status == "delivered"
    # and the gateway answered two rows of the dataset, counted as one call, delivering the API order
    assert len(rows["rows"]) == 2, rows
    assert Usage.objects.get(entitlement=api_order.entitlement).calls == 1
    assert Order.objects.get(pk=api_order.pk).status == "delivered"
    # and the query was logged with what it answered and suppressed, and delivered the sandbox order
    logged = SandboxQuery.objects.get(entitlement=sandbox_order.entitlement)
    assert (logged.outcome, logged.rows_out, logged.rows_suppressed) == ("answered", 2, 1)
    assert Order.objects.get(pk=sandbox_order.pk).status == "delivered"
