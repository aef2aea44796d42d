"""The public page in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
filters and counts, phone widths, languages, schema.org data, and axe-core's accessibility
check (from npm, injected into each page)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from tests.e2e import foreign, scenario
from tests.e2e.conftest import Running, System


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


AXE = Path(__file__).parent / "axe"
"""package.json and package-lock.json of axe-core (npm); installed under .local/axe."""
PHONE_WIDTHS = (360, 390)


def axe_source() -> str:
    """axe-core's browser script, installed from npm by its lock file (once, under .local/)."""
    target = foreign.LOCAL / "axe"
    lock = (AXE / "package-lock.json").read_bytes()
    script = target / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists() or (target / "package-lock.json").read_bytes() != lock:
        npm = foreign.tool("npm", "install Node.js 20 or later with npm")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(AXE / name, target / name)
        cache = foreign.LOCAL / "npm-cache"
        foreign.run([npm, "ci", "--no-audit", "--no-fund", "--cache", str(cache)], cwd=target)
    return script.read_text()


async def axe_violations(page: Page, source: str) -> list[str]:
    """axe-core's violations on the page as it is (WCAG 2.1 A and AA and best practices).

    The script is evaluated through the DevTools protocol, which the page's
    Content-Security-Policy does not govern, so the page keeps its policy while tested."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(source)
    result = await page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values:"
        " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
    ]


async def overflow(page: Page) -> list[str]:
    """What sticks out of the viewport sideways: the page's own width, and any element of
    the main content whose right edge is beyond it (scrollable regions aside)."""
    result: list[str] = await page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [];
          if (document.documentElement.scrollWidth > width)
            out.push(`page ${document.documentElement.scrollWidth} > ${width}`);
          for (const e of document.querySelectorAll('main *, header *, footer *')) {
            if (e.closest('.scroll, details:not([open]), thead')) continue;
            const r = e.getBoundingClientRect();
            if (r.width > 0 && r.right > width + 0.5)
              out.push(`${e.tagName.toLowerCase()}.${e.className} right ${r.right} > ${width}`);
          }
          return out.slice(0, 10);
        }"""
    )
    return result


@pytest.fixture(scope="module")
async def labelled(running_system: Running, kafka_bootstrap: str) -> str:
    """An organisation with a valid Silver-less Bronze label in Lithuania, listed."""
    r = running_system
    async with httpx.AsyncClient(timeout=30.0) as client:
        system = System(r.urls, client, kafka_bootstrap, r.secret, r.instance, r.database_url)
        org, _ = await scenario.bronze_label(system, "LT", "FR", "2025-09-03", "2025-09-20")
        await scenario.listed(system, org)
    return org


@pytest.mark.parametrize("width", PHONE_WIDTHS)
async def test_every_page_fits_a_phone_and_has_no_accessibility_violation(
    system: System, labelled: str, width: int
) -> None:
    source = axe_source()
    base = system.urls["projections"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            context = await browser.new_context(
                viewport={"width": width, "height": 800}, device_scale_factor=2, is_mobile=True
            )
            page = await context.new_page()
            refused: list[str] = []
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            for path in (
                "/",
                f"/?q={labelled}",
                f"/organisations/{labelled}",
                "/experts",
                "/subscribe",
                "/?lang=de",
                f"/organisations/{labelled}?lang=fr",
            ):
                response = await page.goto(base + path)
                assert response is not None and response.status == 200, path
                # then nothing is cut off at the side, the list's rows included
                assert await overflow(page) == [], path
                assert await axe_violations(page, source) == [], path
            await page.goto(f"{base}/?q={labelled}")
            row = page.locator('[data-testid="labels"] tbody tr').first
            for cell in ("Country", "Level", "Valid until", "Status"):  # the last columns
                assert await row.locator(f'td[data-label="{cell}"]').is_visible()
            await page.screenshot(path=str(foreign.LOCAL / f"page-{width}.png"), full_page=True)
            assert refused == []
        finally:
            await browser.close()


async def test_the_page_speaks_the_visitor_s_language_with_a_switch_and_permalinks(
    system: System, labelled: str
) -> None:
    base = system.urls["projections"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            # given a browser that asks for French
            context = await browser.new_context(locale="fr-FR")
            page = await context.new_page()
            refused: list[str] = []
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            response = await page.goto(f"{base}/?q={labelled}")
            assert response is not None and response.status == 200
            # then the page is French, with country names, and says so
            assert await page.locator("html").get_attribute("lang") == "fr"
            assert response.headers["content-language"] == "fr"
            assert "Accept-Language" in response.headers["vary"]
            assert await page.title() == "Registre des labels de clusters"
            row = page.locator('[data-testid="labels"] tbody tr').first
            assert await row.locator('td[data-label="Pays"]').inner_text() == "Lituanie"
            assert await row.locator('td[data-label="Niveau"]').inner_text() == "Bronze"
            assert await row.locator('td[data-label="Statut"]').inner_text() == "valide"
            options = page.locator("select#country option")
            assert "Lituanie" in await options.all_inner_texts()

            # when the visitor switches to German
            await (
                page.get_by_role("navigation", name="Langue")
                .get_by_role("link", name="Deutsch")
                .click()
            )
            await page.wait_for_url("**lang=de*")
            # then the page is German, a permalink that keeps its other parameters
            assert await page.locator("html").get_attribute("lang") == "de"
            assert labelled in page.url
            assert await page.locator("h1").inner_text() == "Ausgezeichnete Clusterorganisationen"
            assert await row.locator('td[data-label="Land"]').inner_text() == "Litauen"
            # and its links and its form keep the language
            await page.get_by_role("button", name="Anzeigen").click()
            await page.wait_for_url("**lang=de*")
            await row.locator("a").first.click()
            await page.wait_for_url(f"**/organisations/{labelled}?lang=de")
            history = page.locator('[data-testid="org-history"] tbody tr')
            assert "vergeben" in await history.first.inner_text()

            # and the organisation's page carries schema.org data the policy lets through
            block = page.locator('script[type="application/ld+json"]')
            data = json.loads(await block.text_content() or "")
            assert data["@context"] == "https://schema.org" and data["@type"] == "Organization"
            assert data["identifier"] == labelled and data["name"] == f"Cluster {labelled}"
            assert data["address"]["addressCountry"] == "LT"
            assert data["url"] == f"https://{labelled}.example.eu"
            assert data["award"][0].startswith("Bronze cluster management excellence label")
            assert refused == []

            # and a permalink is the same page whatever the browser asks for
            english = await browser.new_context(locale="en-GB")
            other = await english.new_page()
            await other.goto(f"{base}/organisations/{labelled}?lang=de")
            assert await other.locator("html").get_attribute("lang") == "de"
            await other.goto(f"{base}/organisations/{labelled}")
            assert await other.locator("html").get_attribute("lang") == "en"
        finally:
            await browser.close()
