"""The live report and a failed run's report in headless Chromium (as tests/viz/test_report_browser.py drives it):
a page opened on a running fit shows new epochs without a manual reload, keeps the user's zoom and scroll across
its own reloads, and stops updating when the run ends; a diverged run's page says "failed" in its own colour, its
mark labels stay inside the plot without overlapping, and a chart whose values span decades has a log/linear
switch."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.viz.test_report_browser import CONFIGS, browser, open_report  # noqa: F401 - the browser fixture
from trainwell.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SPIRALS = str(CONFIGS / "spirals-mlp.toml")


def _state(page) -> str:
    for _ in range(40):  # the page may be between its own reloads
        try:
            return page.locator("#run-state").inner_text(timeout=1000)
        except Exception:  # noqa: BLE001 - a navigation in progress
            time.sleep(0.25)
    raise AssertionError("no #run-state on the page")


def _epochs(text: str) -> int:
    m = re.match(r"running: (\d+) of", text)
    return int(m.group(1)) if m else -1


def test_a_running_fit_page_updates_itself_and_stops_when_the_run_ends(browser, tmp_path):  # noqa: F811
    out = tmp_path / "live"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # long enough to outlast several of the page's 2 s polls after it opens: 60 epochs took 1.9 s here, and a page
    # opened at epoch 17 saw the run end before its next poll
    proc = subprocess.Popen([sys.executable, "-m", "trainwell", "fit", SPIRALS, "--set", "train.epochs=300",
                             "--set", "data.options={arms = 3, n_per_class = 400}", "--set", "report.every=1",
                             "--set", "report.every_seconds=0", "--set", "stop.criteria=[]", "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "report.html").is_file() or "running: " not in (out / "report.html").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the fit ended before a live page existed"
            time.sleep(0.2)
        page, problems = open_report(browser, out / "report.html")
        assert page.locator("body").get_attribute("data-live") == "polling"
        first = _epochs(_state(page))
        assert first >= 0 and "Metrics so far" in page.locator("#overview").inner_text()
        overview = page.locator("#overview table").first.inner_text()
        assert "cpu" in overview and "torch 2." in overview and re.search(r"parameters\s+[\d,]+", overview)
        # the user's view: zoomed into the first epochs, scrolled down
        page.evaluate("() => { const u = document.getElementById('chart-step-loss')._u;"
                      " u.setScale('x', {min: 2, max: 9}); window.scrollTo(0, 400); "
                      "window.dispatchEvent(new Event('scroll')); }")
        seen = first
        while seen <= first and proc.poll() is None:
            time.sleep(0.5)
            text = _state(page)
            seen = _epochs(text) if text.startswith("running") else 10**6
        assert seen > first, "the page never showed a newer epoch by itself"
        page.wait_for_selector("body[data-charts=ready]")
        scale = page.evaluate("() => { const u = document.getElementById('chart-step-loss')._u;"
                              " return [u.scales.x.min, u.scales.x.max, window.scrollY]; }")
        assert scale[:2] == [2, 9] and abs(scale[2] - 400) <= 2, scale
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        for _ in range(60):
            if _state(page).startswith("finished"):
                break
            time.sleep(0.5)
        assert _state(page).startswith("finished")
        page.wait_for_selector("body[data-charts=ready]")
        assert page.locator("body").get_attribute("data-live") == "off"
        assert "Final metrics" in page.locator("#overview").inner_text()
        page.evaluate("() => { window.stillHere = true; }")  # a reload would forget it
        page.wait_for_timeout(5000)  # more than two polling periods
        assert page.evaluate("() => window.stillHere === true")
        assert problems == []
        page.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    out = tmp_path_factory.mktemp("diverged") / "run"
    code = main(["fit", SPIRALS, "--set", "data.options={arms = 3, n_per_class = 60}", "--set", "train.epochs=5",
                 "--set", "optim.lr=30", "--out", str(out), "--quiet"])
    assert code == 1
    return out


def test_a_failed_run_looks_failed_and_its_labels_stay_inside_the_plot(browser, diverged):  # noqa: F811
    page, problems = open_report(browser, diverged / "report.html")
    assert problems == []
    badge = page.locator("#run-state")
    assert badge.inner_text().startswith("failed: diverged") and "failed" in badge.get_attribute("class")
    finished_blue = "rgb(221, 244, 255)"
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") not in (finished_blue, "rgba(0, 0, 0, 0)")
    for chart in ("chart-loss", "chart-acc"):
        boxes, plot = page.evaluate(f"""() => {{
            const el = document.getElementById('{chart}'), u = el._u, dpr = window.devicePixelRatio || 1;
            return [el._marks.map((m) => m.box),
                    [u.bbox.left / dpr, u.bbox.top / dpr, u.bbox.width / dpr, u.bbox.height / dpr]]; }}""")
        assert len(boxes) == 2
        for left, top, width, _ in boxes:
            assert left >= plot[0] and left + width <= plot[0] + plot[2] + 0.5 and top >= plot[1] - 1, (chart, boxes)
        (l1, t1, w1, h1), (l2, t2, w2, h2) = boxes
        assert l1 + w1 <= l2 or l2 + w2 <= l1 or t1 + h1 <= t2 or t2 + h2 <= t1, (chart, boxes)  # no overlap
    toggles = page.locator(".chart .log-toggle")
    assert toggles.count() >= 1
    chart = toggles.first.locator("xpath=..")
    before = chart.get_attribute("data-scale")
    toggles.first.click()
    assert chart.get_attribute("data-scale") == ("linear" if before == "log" else "log")
    assert chart.locator("canvas").count() == 1  # redrawn, not drawn twice
    page.close()


def test_the_failed_page_is_not_the_finished_one_without_a_browser(diverged):
    from trainwell.viz import page as page_module

    text = (diverged / "report.html").read_text()
    assert "class='status failed'" in text and "failed: diverged" in text
    data = text.split("id=\"trainwell-data\">")[1].split("</script>")[0]
    assert ".status.failed{" in page_module.STYLE and '"live":' not in data  # a finished page does not poll
    assert Path(diverged / "report-live.js").read_text().count('"running": false') == 1


def test_a_27_member_sweep_has_a_legend_smaller_than_its_chart(browser, tmp_path):  # noqa: F811
    from tests.viz.test_report_pages import _big_sweep
    from trainwell.viz.build import build_report

    page, problems = open_report(browser, build_report(_big_sweep(tmp_path / "sw")))
    assert problems == []
    for chart in page.locator(".chart").all():
        legend = chart.locator(".u-legend").bounding_box()
        plot = chart.locator("canvas").first.bounding_box()
        assert legend["height"] < plot["height"] / 2, (chart.get_attribute("id"), legend, plot)
        entries = [e for e in chart.locator(".u-legend .u-series").all() if e.is_visible()]
        assert len(entries) == 1 + 9  # the x value and one entry per setting (the bands have none)
    page.close()
