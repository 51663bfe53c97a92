"""The lab's pages: one page per experiment with each criterion's measured value and interval beside its threshold
and the part that decided it, the numbers as a table of every seed, every seed's figures, the control and the
literature; a short index that links them and shows every seed's verdict."""

import html
import json
import re
import types
from dataclasses import dataclass

import pytest
from matplotlib.figure import Figure

from trainwell.lab import base, pages, registry, runner


def _fake(name="fake"):
    @dataclass
    class Config:
        effect: float = 0.3
        seed: int = 0
        control: bool = False

        @classmethod
        def quick(cls):
            return cls()

    def run(cfg, workdir=None):
        effect = 0.0 if cfg.control else cfg.effect if cfg.seed != 1 else -cfg.effect  # seed 1 disagrees
        return {"diffs": [effect + 0.01 * (k % 3 - 1) for k in range(6)], "seed": cfg.seed}

    def plot(result):
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot(result["diffs"])
        return {"diffs": fig}

    def verdict(result):
        m, lo, hi = base.mean_interval(result["diffs"])
        return base.decide(f"{name} claim", [base.criterion("gain", m, lo, hi, method="t", n=6)],
                           {"mean gain": m, "per width": {"w3": 0.5, "w6": 0.75}, "literature": "Paper (2020): 0.3"},
                           "gain > 0")

    return types.SimpleNamespace(NAME=name, CLAIM=f"{name} claim", PAPER="Somebody et al. (2020)",
                                 EXPECTED_S={"quick": 1, "default": 1}, CONTROL="the gain removed",
                                 LITERATURE="Somebody et al. (2020), Table 1: gain 0.3", Config=Config, run=run,
                                 plot=plot, verdict=verdict)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    mods = {"fake": _fake()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "experiments", lambda: mods)
        out = tmp_path_factory.mktemp("pages") / "lab"
        summaries = runner.run_lab(["fake"], out, quick=False, seeds=3)
        runner.run_lab(["fake"], out, quick=False, seeds=1, control=True)
    return out, summaries


def _cells(text: str, row_start: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", text, re.S)
    out = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S) for r in rows]
    text = [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in r] for r in out]
    return [r for r in text if r and r[0] == row_start]


def test_a_criterion_shows_its_value_interval_threshold_and_which_part_failed(lab):
    out, summaries = lab
    page = (out / "fake" / "report.html").read_text()
    rows = _cells(page, "gain")[:3]  # the fourth is the control's
    assert [r[1] for r in rows] == ["0", "1", "2"]  # every seed, not only the first
    for row, p in zip(rows, summaries[0]["per_seed"], strict=True):
        c = p["verdict"]["evidence"]["criteria"][0]
        assert row[2] == f"{c['effect']:.4g}" and row[3] == f"[{c['lo']:.4g}, {c['hi']:.4g}]" and row[4] == "> 0"
        assert row[7] == c["status"]
    fail = rows[1]  # seed 1 measured the effect the other way: its whole interval lies below the threshold
    assert fail[7] == "fail" and fail[8].startswith("the whole interval lies below 0: upper end")
    assert rows[0][7] == "pass" and rows[0][8] == "the whole interval lies above 0"
    assert "class='failed'" in page


def test_the_page_has_claim_source_literature_numbers_seeds_figures_and_control(lab):
    out, summaries = lab
    page = (out / "fake" / "report.html").read_text()
    assert "fake claim" in page and "Somebody et al. (2020)" in page
    assert "Somebody et al. (2020), Table 1: gain 0.3" in page  # LITERATURE
    assert _cells(page, "per width / w6")[0][1:] == ["0.75", "0.75", "0.75"]  # numbers: a column per seed
    assert "<pre" not in page.split("id='numbers'")[1].split("</section>")[0]  # a table, not raw JSON
    imgs = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert imgs == ["figures/diffs.png", "figures/diffs_seed1.png", "figures/diffs_seed2.png"]
    assert "Control: " in page and "the gain removed" in page
    summary = json.loads((out / "fake" / "summary.json").read_text())
    assert summary["verdict"]["status"] == "unstable" and summary["literature"].startswith("Somebody")
    assert [p["figures"] for p in summary["per_seed"]][1] == ["figures/diffs_seed1.png"]


def test_the_index_links_each_page_and_shows_every_seed(lab):
    out, _ = lab
    index = (out / "index.html").read_text()
    assert "href='fake/report.html'" in index and "data:image" not in index and len(index) < 20_000
    row = _cells(index, "fake")[0]
    assert row[2] == "unstable" and row[3].replace("\xa0", "").split() == ["0:pass", "1:fail", "2:pass"]
    assert row[4] == "inconclusive"  # the control's verdict (it must never pass)


def test_a_verdict_without_intervals_and_an_error_are_shown_plainly(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    summary = {"name": "plain", "claim": "c", "paper": "p", "size": "quick", "seeds": [0, 1], "wall_s": 2.0,
               "verdict": {"status": "error", "threshold": "all 8 reconstructed", "evidence": {}},
               "per_seed": [{"seed": 0, "wall_s": 1.0, "verdict": base.make_verdict("c", False, {"reconstructed":
                                                                                           "7/8"}, "t")},
                            {"seed": 1, "wall_s": 1.0, "verdict": {"status": "error", "evidence": {"error": "boom"},
                                                                    "traceback": "Traceback: boom"}}]}
    page = pages.write_page(summary, folder).read_text()
    assert "no criteria with intervals" in page and _cells(page, "reconstructed")[0][1] == "7/8"
    assert "Traceback: boom" in page and "all 8 reconstructed" in page
    assert pages.write_page({**summary, "name": "x"}, tmp_path / "<bad>") is None  # never a path from a summary


def test_why_names_the_deciding_part_of_each_kind_of_criterion():
    assert pages.why(base.criterion("g", 0.1, 0.05, 0.2, method="t")) == "the whole interval lies above 0"
    assert "contains 0: lower end -0.1 <= 0 < upper end 0.2" in pages.why(base.criterion("g", 0.05, -0.1, 0.2,
                                                                                         method="t"))
    assert pages.why(base.criterion("g", 0.0, 0.0, 0.0, method="t")) == (
        "no part of the interval lies above 0: upper end 0 = 0")
    assert pages.why(base.check("density", False, 0.4, "0.2")) == "measured 0.4, expected 0.2"
    assert pages.why(base.criterion("g", 0.1, float("nan"), float("nan"), method="t", n=1)).startswith(
        "no interval (n = 1)")
