"""``make screenshot``: the README's picture of the HTML report, taken in headless Chromium.

Opens ``data/output/report.html`` (``make demo`` writes it) once its charts are drawn and saves
``docs/report.png``. Chromium comes from the Debian package, driven by Playwright.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from include import settings
from include.html_report import CHART_IDS, REPORT_FILE

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = settings.PROJECT_ROOT / "docs" / "report.png"


def show_report(page: Page, path: Path) -> None:
    """Load the report in ``page`` and wait until every chart is drawn."""
    page.goto(path.resolve().as_uri())
    for chart in CHART_IDS:
        page.wait_for_selector(f"#{chart} .main-svg", timeout=30_000)


def main() -> int:
    report = settings.output_dir() / REPORT_FILE
    if not report.is_file():
        print(f"{report} does not exist: run make demo first", file=sys.stderr)
        return 1
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            show_report(page, report)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    print(f"wrote {SCREENSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
