"""Browser tests: Playwright (sync API) driving the system's Chromium against pytest-django's live server.

See docs/browser-tests.md. Never `playwright install`: the browser is Debian's
(`apt-get install -y chromium fonts-wqy-microhei`; the font makes Chinese text render instead of boxes).
Where Chromium is missing the tests skip with the reason, except under CI (CI=true), where they fail:
CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Stop Chromium from reaching for the internet at start-up (it cannot here, and it slows everything down).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "apt-get install -y chromium fonts-wqy-microhei (never `playwright install`)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so browser tests fail instead of skipping. Install: {INSTALL_HINT}")
    pytest.skip(f"{reason}. Install: {INSTALL_HINT}")


@pytest.fixture(autouse=True)
def _allow_sync_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API runs an event loop in this thread, and Django refuses sync ORM calls from a thread
    # with a running loop (SynchronousOnlyOperation). Allowed for browser tests only, not the whole session.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def chromium_path() -> str:
    """The system Chromium's path; skips (or fails under CI) when it or Playwright is missing."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"Chromium not found at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"the playwright package is not importable ({exc})")
    return CHROMIUM


@pytest.fixture
def launch_browser(chromium_path: str):
    """A context manager factory: `with launch_browser() as browser:`, to start once the test's data exists.

    Starting Playwright inside the test body (after the data is created and committed) keeps every ORM call of
    the test and of the fixtures' set-up and teardown outside Playwright's event loop.
    """
    from contextlib import contextmanager

    from playwright.sync_api import Browser, sync_playwright

    @contextmanager
    def launch() -> Iterator[Browser]:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()

    return launch
