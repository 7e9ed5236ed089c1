"""A real `tessera serve` process and Debian's chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def server(sqlite_installation, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """``(base_url, installation)``: `tessera serve` on a free port over a fresh installation."""
    with serving(sqlite_installation.env, tmp_path / "serve.log") as base:
        yield base, sqlite_installation


@pytest.fixture
def page() -> Iterator:
    """A Playwright page in headless chromium (skipped when chromium is not installed)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup --with-browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        browser.close()
