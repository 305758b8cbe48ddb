"""Headless Chromium for the dashboard tests: launching it (the `browser` fixture
in conftest.py), the skip when Chromium is missing, and reading an element by its
test id."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver",
)


async def launch() -> AsyncIterator[Any]:
    """Chromium, headless, for as long as the generator runs."""
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install playwright)"
    )
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def text(page: Any, testid: str) -> str:
    """The stripped text of the first element with data-testid `testid`."""
    return str(await page.get_by_test_id(testid).first.text_content()).strip()
