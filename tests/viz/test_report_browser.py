"""The reports in a real browser: headless Chromium (Debian's package) driven by Playwright loads the report.html
of a short fit, a sweep and a prune from file:// URLs: no console errors, no network request, every chart and
image rendered, every section present, the hover read-out and the histogram slider work.

Run: ``.venv/bin/python -m pytest -m browser`` (needs ``apt-get install chromium`` and the dev extras; the path
of the browser can be changed with TRAINWELL_CHROMIUM). Without a browser these tests are skipped, except under
CI (CI=true), where a missing browser is a failure.
"""

import os
from pathlib import Path

import pytest

from trainwell.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("TRAINWELL_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SPIRALS = ["--set", "data.options={arms = 3, n_per_class = 60}", "--set", "train.epochs=3",
           "--set", "doctor.monitor_every=5"]
CONFIGS = Path(__file__).parents[2] / "configs"


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser tests (.ci/run installs chromium and playwright)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    spirals = str(CONFIGS / "spirals-mlp.toml")
    assert main(["fit", str(CONFIGS / "digits-cnn.toml"), "--set", "train.epochs=2", "--set",
                 "doctor.monitor_every=10", "--out", str(root / "fit"), "--quiet"]) == 0
    assert main(["sweep", spirals, *SPIRALS, "--grid", "optim.lr=0.1,0.03", "--seeds", "2",
                 "--out", str(root / "sweep")]) == 0
    assert main(["prune", spirals, *SPIRALS, "--rounds", "1", "--control", "random", "--out", str(root / "prune")]) == 0
    return root


def open_report(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def no_network(route):
        if not route.request.url.startswith(("file:", "data:")):
            problems.append(f"network request: {route.request.url}")
            return route.abort()
        return route.continue_()

    page.route("**/*", no_network)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-charts=ready]", timeout=15_000)
    return page, problems


def assert_rendered(page) -> int:
    charts = page.locator(".chart")
    n = charts.count()
    for i in range(n):
        chart = charts.nth(i)
        assert chart.get_attribute("data-rendered") == "1", chart.get_attribute("id")
        box = chart.locator("canvas").first.bounding_box()
        assert box and box["width"] > 250 and box["height"] > 100, chart.get_attribute("id")
    images = page.locator("img")
    for i in range(images.count()):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
    return n


def sections(page) -> list[str]:
    return [t.strip() for t in page.locator("h2").all_inner_texts()]


def test_fit_report_in_chromium(browser, runs):
    page, problems = open_report(browser, runs / "fit" / "report.html")
    assert problems == []
    assert assert_rendered(page) >= 6  # step loss, loss, accuracy, lr, activation std, gradient std
    for title in ("Overview", "Curves", "Activations and gradients", "Doctor", "Model", "Config", "Files"):
        assert title in sections(page)
    assert page.locator("h3.phase").count() == 3  # pre-flight, in-flight, post-flight
    assert page.locator("img[alt='first layer weights']").count() == 1
    hists = page.locator("#hists .hist")
    assert hists.count() >= 4 and all(hists.nth(i).locator("canvas").count() for i in range(hists.count()))
    label = page.locator("#hists-label")
    last = label.inner_text()
    page.locator("#hists-slider").fill("0")
    assert label.inner_text().startswith("snapshot 1 of") and label.inner_text() != last
    # hovering the loss chart fills the legend with the values under the cursor
    chart = page.locator("#chart-loss .u-over")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=3)
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2, steps=3)
    values = page.locator("#chart-loss .u-legend .u-value").all_inner_texts()
    assert values[0] == "2" and all(v not in ("", "-") for v in values)
    page.close()


def test_sweep_report_in_chromium(browser, runs):
    page, problems = open_report(browser, runs / "sweep" / "report.html")
    assert problems == []
    assert assert_rendered(page) == 3
    assert {"Settings (mean ± std over seeds)", "Members", "Curves by setting"} <= set(sections(page))
    assert page.locator("#members tbody tr").count() == 4 and page.locator("#settings tbody tr").count() == 2
    assert "±" in page.locator("#settings").inner_text()
    page.close()


def test_prune_report_in_chromium(browser, runs):
    page, problems = open_report(browser, runs / "prune" / "report.html")
    assert problems == []
    assert assert_rendered(page) == 4  # accuracy vs density + three curve charts
    assert {"Rounds", "Accuracy vs weights remaining", "Curves of every round"} <= set(sections(page))
    assert page.locator("#results tbody tr").count() == 3  # dense, one ticket, one random control
    page.locator("#results a").first.click()  # a round's own report opens from the table
    page.wait_for_selector("body[data-charts=ready]")
    assert "trainwell run" in page.locator("h1").inner_text()
    page.close()
