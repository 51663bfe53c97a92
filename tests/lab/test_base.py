"""The lab's honesty: verdicts from an effect with an interval (checked against scipy and published intervals),
controls that make each claim false on purpose, quick size that says when it cannot decide, and re-runs that never
destroy a result."""

import json
import math
import types
from dataclasses import dataclass, replace

import pytest
import scipy.stats
from matplotlib.figure import Figure

from trainwell.cli import main
from trainwell.lab import base, registry, runner


# -- intervals ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (81, 263), (150, 150), (412, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert base.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_difference_of_proportions_matches_newcombe_1998():
    # Newcombe 1998, Statistics in Medicine 17:873-890, table II, method 10 (hybrid score)
    for (k1, n1, k2, n2), (lo, hi) in {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090),
                                       (6, 7, 2, 7): (0.0582, 0.8062), (5, 56, 0, 29): (-0.0381, 0.1926)}.items():
        d, a, b = base.diff_proportions(k1, n1, k2, n2)
        assert d == pytest.approx(k1 / n1 - k2 / n2)
        assert (a, b) == pytest.approx((lo, hi), abs=6e-5)


@pytest.mark.parametrize("values", [[0.02, 0.05, 0.01], [1, 0, 0, -1, 1, 1, 0, 1], [3.0, 2.5]])
def test_mean_interval_matches_scipy_t(values):
    ci = scipy.stats.ttest_1samp(values, 0).confidence_interval(0.95)
    m, lo, hi = base.mean_interval(values)
    assert m == pytest.approx(sum(values) / len(values))
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize("a,b", [([300, 250, 300, 120], [20, 35, 18]), ([0.61, 0.64, 0.6], [0.58, 0.59, 0.62, 0.6])])
def test_diff_means_matches_scipy_welch(a, b):
    ci = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    d, lo, hi = base.diff_means(a, b)
    assert d == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert base.diff_means([1, 1], [0, 0]) == (1, 1, 1)


def test_mean_interval_of_one_value_decides_nothing():
    m, lo, hi = base.mean_interval([0.3])
    assert m == 0.3 and lo == -math.inf and hi == math.inf
    assert base.criterion("x", m, lo, hi, method="t")["status"] == "inconclusive"


@pytest.mark.slow  # 0.36 s each on a 2-core CPU (RESULTS §51)
def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    import numpy as np

    rng = np.random.default_rng(0)
    values = rng.normal(0.1, 1.0, 200).tolist()
    ci = scipy.stats.bootstrap((values,), np.mean, n_resamples=20000, method="percentile", random_state=1)
    m, lo, hi = base.bootstrap_interval(values, draws=20000, seed=3)
    assert m == pytest.approx(np.mean(values))
    se = np.std(values) / math.sqrt(len(values))
    assert lo == pytest.approx(ci.confidence_interval.low, abs=0.05 * se * 4)
    assert hi == pytest.approx(ci.confidence_interval.high, abs=0.05 * se * 4)
    assert base.bootstrap_interval(values, draws=500, seed=3) == base.bootstrap_interval(values, draws=500, seed=3)


def test_paired_correct_counts_disagreements():
    assert base.paired_correct([1, 1, 0, 0], [1, 0, 1, 0]) == [0, 1, -1, 0]
    with pytest.raises(ValueError, match="same examples"):
        base.paired_correct([1], [1, 0])


def test_criterion_passes_above_fails_below_and_is_inconclusive_across():
    assert base.criterion("d", 0.05, 0.01, 0.09, 0.0, method="t")["status"] == "pass"
    assert base.criterion("d", -0.05, -0.09, -0.01, 0.0, method="t")["status"] == "fail"
    assert base.criterion("d", 0.0, -0.02, 0.02, 0.0, method="t")["status"] == "inconclusive"
    assert base.criterion("d", 0.0, 0.0, 0.0, 0.0, method="t")["status"] == "fail"  # equal arms refute "better"
    assert base.criterion("d", 0.05, 0.05, 0.05, 0.05, method="t")["status"] == "fail"  # at the threshold
    assert base.criterion("d", 0.0, 0.0, 0.0, -0.01, method="t")["status"] == "pass"
    assert base.criterion("d", 0.06, 0.051, 0.07, 0.05, method="t")["status"] == "pass"
    assert base.criterion("d", 0.06, 0.04, 0.07, 0.05, method="t")["status"] == "inconclusive"
    assert base.criterion("d", math.nan, -1, 1, method="t")["status"] == "inconclusive"


def test_decide_combines_criteria():
    p = base.criterion("a", 1, 0.5, 1.5, method="t")
    i = base.criterion("b", 0, -1, 1, method="t")
    f = base.criterion("c", -1, -1.5, -0.5, method="t")
    assert base.decide("c", [p, p], {}, "t")["status"] == "pass"
    assert base.decide("c", [p, i], {}, "t")["status"] == "inconclusive"
    assert base.decide("c", [p, i, f], {}, "t")["status"] == "fail"
    v = base.decide("c", [p, base.check("exact", False, 3, "< 2")], {"x": 1}, "t")
    assert v["status"] == "fail" and v["decided"] and v["evidence"]["criteria"][1]["method"] == "exact"


# -- quick size and exit codes ---------------------------------------------------------------------------------------
def test_quick_size_turns_undecided_fails_and_inconclusives_into_inconclusive_quick_size():
    undecided = base.make_verdict("c", False, {}, "t")
    decided = base.decide("c", [base.criterion("d", -1, -2, -0.5, method="t")], {}, "t")
    unsure = base.decide("c", [base.criterion("d", 0, -2, 2, method="t")], {}, "t")
    assert runner.size_limited(undecided, quick=False)["status"] == "fail"
    q = runner.size_limited(undecided, quick=True)
    assert q["status"] == "inconclusive" and q["quick_status"] == "fail" and runner.shown(q) == \
        "inconclusive (quick size)"
    assert runner.size_limited(decided, quick=True)["status"] == "fail"  # a decided fail stays a fail
    assert runner.shown(runner.size_limited(unsure, quick=True)) == "inconclusive (quick size)"
    assert runner.shown(runner.size_limited(unsure, quick=False)) == "inconclusive"
    passed = base.decide("c", [base.criterion("d", 1, 0.5, 2, method="t")], {}, "t")
    assert runner.size_limited(passed, quick=True)["status"] == "pass"
    for v in (passed, decided):  # a quick size declared too small to decide: neither pass nor fail
        q = runner.size_limited(v, quick=True, decides=False)
        assert runner.shown(q) == "inconclusive (quick size)" and q["quick_status"] == v["status"]
        assert runner.size_limited(v, quick=False, decides=False)["status"] == v["status"]


def test_exit_code_is_one_only_for_a_decided_fail_or_a_passing_control():
    def s(*statuses):
        return {"verdict": {"status": statuses[0]}, "per_seed": [{"verdict": {"status": x}} for x in statuses]}

    assert runner.exit_code([s("pass"), s("inconclusive")]) == 0
    assert runner.exit_code([s("pass"), s("fail")]) == 1
    assert runner.exit_code([s("unstable", "pass", "inconclusive")]) == 0
    assert runner.exit_code([s("error")]) == 1
    assert runner.exit_code([s("fail"), s("inconclusive")], control=True) == 0
    assert runner.exit_code([s("pass")], control=True) == 1


# -- --control and the runner with a fake experiment -------------------------------------------------------------------
def _fake(name="fake", raises=False):
    @dataclass
    class Config:
        effect: float = 0.3
        seed: int = 0
        control: bool = False

        @classmethod
        def quick(cls):
            return cls()

    def run(cfg, workdir=None):
        if raises:
            raise RuntimeError("boom")
        effect = 0.0 if cfg.control else cfg.effect
        return {"diffs": [effect + 0.01 * ((cfg.seed + k) % 3 - 1) for k in range(6)]}

    def plot(result):
        fig = Figure()
        fig.subplots().plot(result["diffs"])
        return {"diffs": fig}

    def verdict(result):
        m, lo, hi = base.mean_interval(result["diffs"])
        return base.decide(f"{name} claim", [base.criterion("gain", m, lo, hi, method="t")], {}, "gain > 0")

    return types.SimpleNamespace(NAME=name, CLAIM=f"{name} claim", PAPER="none", EXPECTED_S={"quick": 1, "default": 1},
                                 CONTROL="the gain removed", Config=Config, run=run, plot=plot, verdict=verdict)


@pytest.fixture
def fake(monkeypatch):
    mods = {"fake": _fake(), "plain": types.SimpleNamespace(**{**vars(_fake("plain")), "CONTROL": None})}
    monkeypatch.setattr(registry, "experiments", lambda: mods)
    monkeypatch.setattr(registry, "names", lambda: list(mods))
    return mods


def test_control_runs_into_its_own_folder_and_the_page_shows_both(fake, tmp_path, capsys):
    out = tmp_path / "lab"
    assert main(["lab", "run", "fake", "--quick", "--out", str(out)]) == 0
    assert main(["lab", "run", "fake", "--quick", "--control", "--out", str(out)]) == 0
    assert "inconclusive (quick size)" in capsys.readouterr().out
    ctrl = json.loads((out / "fake" / "control" / "summary.json").read_text())
    assert ctrl["control"] == "the gain removed" and ctrl["config"]["control"] is True
    assert ctrl["verdict"]["status"] == "inconclusive" and ctrl["verdict"]["note"] == "quick size"
    main_summary = json.loads((out / "fake" / "summary.json").read_text())
    assert main_summary["verdict"]["status"] == "pass" and "control" not in main_summary  # untouched by the control
    index = (out / "index.html").read_text()
    assert "fake/report.html" in index and "inconclusive (quick size)" in index  # the control's verdict
    page = (out / "fake" / "report.html").read_text()
    assert "Control:" in page and "the gain removed" in page and "<td>gain</td>" in page and ">0.3<" in page
    assert [r["name"] for r in json.loads((out / "index.json").read_text())] == ["fake"]
    assert main(["lab", "run", "plain", "--control", "--out", str(out)]) == 2  # no control declared
    assert "declares no control" in capsys.readouterr().err


def test_a_passing_control_exits_one(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(fake["fake"], "run", lambda cfg, workdir=None: {"diffs": [0.3, 0.31, 0.29]})
    assert main(["lab", "run", "fake", "--control", "--out", str(tmp_path / "lab")]) == 1


def test_an_error_never_replaces_an_earlier_result(fake, tmp_path, monkeypatch):
    out = tmp_path / "lab"
    runner.run_lab(["fake"], out, quick=True)
    before = (out / "fake" / "summary.json").read_text()
    monkeypatch.setattr(fake["fake"], "run", _fake(raises=True).run)
    s = runner.run_lab(["fake"], out, quick=True)
    assert s[0]["verdict"]["status"] == "error"  # reported as what happened now
    assert (out / "fake" / "summary.json").read_text() == before  # the result stays
    assert (out / "fake" / "figures" / "diffs.png").is_file()
    assert "boom" in json.loads((out / "fake" / "error.json").read_text())["verdict"]["evidence"]["error"]
    kept = runner.run_lab(["fake"], out, quick=True, resume=True)
    assert kept[0]["verdict"]["status"] == "pass"  # --resume keeps it
    monkeypatch.setattr(fake["fake"], "run", _fake().run)
    runner.run_lab(["fake"], out, quick=True)
    assert not (out / "fake" / "error.json").exists()  # a newer result replaces the error


# -- re-running real experiments into the same folder ------------------------------------------------------------
@pytest.mark.slow
def test_rerunning_lottery_ticket_and_optimizers_reuses_their_sub_runs(tmp_path, monkeypatch):
    exps = registry.experiments()
    lt, opt = exps["lottery-ticket"], exps["optimizers"]
    monkeypatch.setattr(lt.Config, "quick", classmethod(lambda cls: replace(cls(), rounds=1, epochs=1, rewind=0.0)))
    small = opt.Config.quick()
    monkeypatch.setattr(opt.Config, "quick", classmethod(lambda cls: replace(small, epochs=1, hidden=[8])))
    out = tmp_path / "x"
    for _ in range(2):
        summaries = runner.run_lab(["lottery-ticket", "optimizers"], out, quick=True)
        assert [s["verdict"]["status"] for s in summaries if s["verdict"]["status"] == "error"] == [], \
            [s["verdict"]["evidence"] for s in summaries]
    assert (out / "lottery-ticket" / "runs" / "seed0" / "reinit").is_dir()


def test_the_index_lists_every_experiment_in_the_folder_and_a_control_run_alone(fake, tmp_path, capsys):
    ctrl_only = tmp_path / "ctrl"
    assert main(["lab", "run", "fake", "--quick", "--control", "--out", str(ctrl_only)]) == 0
    index = json.loads((ctrl_only / "index.json").read_text())
    assert [r["name"] for r in index] == ["fake"]
    assert index[0]["verdict"] is None and index[0]["control"]["verdict"]["status"] == "inconclusive"
    page = (ctrl_only / "index.html").read_text()
    assert "fake/report.html" in page and "not run" in page and "inconclusive (quick size)" in page
    assert "the gain removed" in (ctrl_only / "fake" / "report.html").read_text()

    out = tmp_path / "lab"
    assert main(["lab", "run", "fake", "--quick", "--out", str(out)]) == 0
    assert main(["lab", "run", "plain", "--quick", "--out", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [r["name"] for r in index] == ["plain", "fake"]  # this run's first, then the ones still in the folder
    assert index[1]["verdict"]["status"] == "pass" and index[1]["control"] is None
    page = (out / "index.html").read_text()
    assert "fake/report.html" in page and "plain/report.html" in page and "2 experiments" in page
