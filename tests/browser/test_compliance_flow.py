"""The compliance gate through the doors people use: a provider files its standard contract in the portal, a
compliance officer accepts it in the admin, and a buyer abroad reads on the product page that the standard
contract is on file until the day it ends, with the trade cleared."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from exchange import roles
from tests.browser.pages import logged_in_page
from tests.compliance.factories import PDF, filing, with_pi
from tests.factories import MemberFirmFactory, UserFactory, admit, ensure_categories, listed_product, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTRACT_END = date(2029, 3, 31)


@pytest.fixture
def people(transactional_db, boards, superuser):
    ensure_categories()
    groups = roles.sync_staff_roles()
    provider_firm = admit(MemberFirmFactory(legal_name_en="Hangzhou Panel Data Co.", role="provider"), "international")
    buyer_firm = admit(MemberFirmFactory(legal_name_en="Lyon Risk SAS", country="FR", role="buyer"), "international")
    reviewer = UserFactory(email="rita@exchange.example", is_staff=True)
    reviewer.groups.add(groups[roles.LISTING_REVIEWERS])
    officer = UserFactory(email="olga@exchange.example", is_staff=True)
    officer.groups.add(groups[roles.COMPLIANCE_OFFICERS])
    return {
        "provider": member(provider_firm, "firm_admin", "paul@hangzhou.example"),
        "buyer": member(buyer_firm, "trader", "bea@lyon.example"),
        "reviewer": reviewer,
        "officer": officer,
    }


def test_a_buyer_abroad_sees_the_standard_contract_on_file(launch_browser, people, live_server, tmp_path: Path):
    from playwright.sync_api import expect

    from compliance.models import EvidenceKind, Filing

    # given a listed product with personal information of 150,000 individuals (a standard contract is needed),
    # and the PIPIA and consent record already accepted
    product = with_pi(listed_product(people["provider"], people["reviewer"], title_en="Consumer panel"), 150_000)
    for kind in (EvidenceKind.PIPIA_REPORT, EvidenceKind.CONSENT_RECORD):
        filing(people["provider"], kind, accepted_by=people["officer"])
    document = tmp_path / "standard-contract.pdf"
    document.write_bytes(PDF)
    base = live_server.url
    with launch_browser() as browser:
        # --- the buyer sees the trade held: the standard contract is not on file ----------------------------
        context, page = logged_in_page(browser, base, people["buyer"].email)
        page.goto(f"{base}/portal/products/{product.pk}/")
        verdict = page.locator("#compliance-verdict")
        expect(verdict).to_contain_text("Held")
        expect(verdict).to_contain_text("Standard contract required: not on file")
        context.close()

        # --- the provider files the contract and its CAC receipt in the portal --------------------------------
        context, page = logged_in_page(browser, base, people["provider"].email, height=1400)
        page.goto(f"{base}/portal/compliance/")
        form = page.locator("form.product-form")
        form.locator("[name=kind]").select_option("standard_contract")
        form.locator("[name=reference]").fill("SC-2026-HZ-17")
        form.locator("[name=issued_on]").fill("2026-04-01")
        form.locator("[name=expires_on]").fill(CONTRACT_END.isoformat())
        form.locator("[name=document]").set_input_files(str(document))
        form.locator("[name=all_products]").check()
        form.locator("[name=receipt_reference]").fill("浙网信备〔2026〕17号")
        form.locator("[name=receipt_filed_on]").fill("2026-04-08")
        form.locator("[name=receipt_document]").set_input_files(str(document))
        form.locator("button[type=submit]").click()
        expect(page.locator("main")).to_contain_text("SC-2026-HZ-17")
        page.screenshot(path=tmp_path / "1-provider-filed.png", full_page=True)
        context.close()
        contract = Filing.objects.get(reference="SC-2026-HZ-17")
        assert contract.status == "submitted" and contract.expires_on == CONTRACT_END

        # --- the compliance officer accepts it in the admin ---------------------------------------------------
        context, page = logged_in_page(browser, base, people["officer"].email, admin=True, width=1400)
        page.goto(f"{base}/admin/compliance/filing/?status__exact=submitted")
        row = page.locator("#result_list tr", has_text="SC-2026-HZ-17")
        row.locator("input.action-select").check()
        page.locator("select[name=action]").select_option("accept")
        page.locator("button[name=index]").click()
        page.locator("#content-main form [type=submit]").first.click()
        expect(page.locator("ul.messagelist")).to_contain_text("1 filing accepted")
        context.close()
        contract.refresh_from_db()
        assert contract.status == "accepted" and contract.decided_by == people["officer"]

        # --- the buyer abroad now reads the verdict: cleared, the contract on file until its end ------------------
        context, page = logged_in_page(browser, base, people["buyer"].email)
        page.goto(f"{base}/portal/products/{product.pk}/")
        verdict = page.locator("#compliance-verdict")
        expect(verdict).to_contain_text("Cleared")
        expect(verdict).to_contain_text(f"Standard contract required: on file until {CONTRACT_END.isoformat()}")
        page.screenshot(path=tmp_path / "2-buyer-verdict.png", full_page=True)
        context.close()
