"""A member logs in through the portal's form, sees both boards, and switches the pages to Chinese."""

from __future__ import annotations

import re

import pytest

from tests.browser.pages import new_page
from tests.factories import PASSWORD, MemberFirmFactory, admit, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "erin@both-boards.example"


@pytest.fixture
def both_boards_trader(transactional_db, boards, superuser):
    # Committed before the browser starts: the live server reads it from its own thread and connection.
    firm = admit(MemberFirmFactory(legal_name_en="Both Boards Data Co."), "domestic", "international")
    return member(firm, "trader", EMAIL)


def test_login_lists_both_boards_and_switches_to_chinese(launch_browser, both_boards_trader, live_server, tmp_path):
    from playwright.sync_api import expect

    with launch_browser() as browser:
        context, page = new_page(browser, height=900)

        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()

        page.wait_for_url(re.compile(r"/portal/$"))
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("main")).to_contain_text(EMAIL)
        expect(page.locator('#boards tr[data-board="domestic"]')).to_contain_text("Domestic board")
        expect(page.locator('#boards tr[data-board="international"]')).to_contain_text("International board")
        expect(page.locator("#boards tr[data-board]")).to_have_count(2)
        page.screenshot(path=tmp_path / "portal-en.png", full_page=True)

        chinese = page.locator('form.lang-switch button[value="zh-hans"]')
        expect(chinese).to_have_text("中文")
        chinese.click()

        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        page.wait_for_url(re.compile(r"/portal/$"))
        expect(page.locator('#boards tr[data-board="domestic"]')).to_contain_text("国内板")
        expect(page.locator('#boards tr[data-board="international"]')).to_contain_text("国际板")
        screenshot = tmp_path / "portal-zh-hans.png"
        page.screenshot(path=screenshot, full_page=True)
        context.close()

    assert screenshot.stat().st_size > 0
