"""The public page in a real headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright

from tests.e2e import scenario
from tests.e2e.conftest import System


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium: run `make browser` (installs Debian's chromium package)")
    return path


async def test_the_page_loads_filters_and_shows_the_counts_of_the_api(system: System) -> None:
    # given a Silver-less, Bronze-labelled organisation in Lithuania
    org, _ = await scenario.bronze_label(system, "LT", "PL", "2025-08-03", "2025-08-20")
    await scenario.listed(system, org)
    api = (await system.get("projections", "/api/counts")).json()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = await browser.new_page()
            refused: list[str] = []  # what the Content-Security-Policy blocked, if anything
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            # when the page is opened
            response = await page.goto(system.urls["projections"] + "/")
            assert response is not None and response.status == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]
            # then its stylesheet applies under the policy
            form = page.locator("form.filters")
            background = await form.evaluate("e => getComputedStyle(e).backgroundColor")
            assert background == "rgb(243, 245, 247)"
            # then the counts shown are the API's
            assert await page.title() == "Cluster label registry"
            for level in ("bronze", "silver", "gold"):
                shown = await page.locator(f'[data-level="{level}"]').inner_text()
                assert int(shown) == api["valid"]["by_level"][level]
            assert (
                int(await page.locator('[data-level="total"]').inner_text())
                == (api["valid"]["total"])
            )
            assert await page.locator("svg[role=img]").count() == 1

            # when the visitor filters by country and level with the keyboard-usable form
            for field in ("country", "level", "q"):  # every field has its label
                assert await page.locator(f'label[for="{field}"]').count() == 1
            await page.locator("select#country").select_option("LT")
            await page.locator("select#level").select_option("bronze")
            await page.locator("input#q").fill(org)
            await page.get_by_role("button", name="Show").click()
            await page.wait_for_url("**/?*country=LT*")

            # then only that label is listed, the counts are Lithuania's, and its page has
            # the history
            lithuania = api["by_country"]["LT"]
            assert (
                int(await page.locator('[data-level="bronze"]').inner_text())
                == (lithuania["bronze"])
            )
            rows = page.locator('[data-testid="labels"] tbody tr')
            assert await rows.count() == 1
            assert org in await rows.first.inner_text()
            await page.get_by_role("link", name=f"Cluster {org}").click()
            history = page.locator('[data-testid="org-history"] tbody tr')
            assert "awarded" in await history.first.inner_text()
            assert refused == []
        finally:
            await browser.close()
