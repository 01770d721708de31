"""Helpers shared by the browser tests: a fresh context and page, and logging in through the real form."""

from __future__ import annotations

from typing import Any

from tests.factories import PASSWORD


def new_page(browser: Any, *, width: int = 1280, height: int = 1000) -> tuple[Any, Any]:
    """A fresh browser context (English, a 15 s default timeout) and a page in it."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    context.set_default_timeout(15_000)
    return context, context.new_page()


def log_in(page: Any, base: str, email: str, *, admin: bool = False) -> None:
    page.goto(f"{base}/admin/login/" if admin else f"{base}/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form [type=submit]").last.click()


def logged_in_page(browser: Any, base: str, email: str, *, admin: bool = False, **size: int) -> tuple[Any, Any]:
    """A fresh context and page, logged in as `email` (through the admin's form when `admin`)."""
    context, page = new_page(browser, **size)
    log_in(page, base, email, admin=admin)
    return context, page
