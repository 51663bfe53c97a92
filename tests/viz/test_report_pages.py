"""report.html without a browser: a running page polls its sidecar and a finished one does not, a failed run is
labelled failed, charts whose values span decades get a log/linear switch, and a 27-member sweep gets one compact
legend entry per setting (never a `failed=` one) with the best setting marked."""

import json
import re

from trainwell.viz import group_report
from trainwell.viz.build import build_report
from trainwell.viz.report import LIVE_FILE, STARTED_FILE, build_fit_report, spans_decades


def charts_of(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="trainwell-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob)


def _fit_dir(path, epochs=3, losses=(2.0, 0.5, 0.01)):
    path.mkdir()
    (path / ".trainwell-run").write_text(json.dumps({"kind": "fit"}))
    (path / "config.toml").write_text('name = "tiny"\n\n[train]\nepochs = 5\n')
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "step": 10 * (e + 1), "train_loss": losses[e], "val_loss": losses[e] * 1.1,
                    "train_acc": 0.5, "val_acc": 0.5, "lr": 0.1}) + "\n" for e in range(epochs)))
    return path


def _sidecar(run) -> dict:
    text = (run / LIVE_FILE).read_text()
    return json.loads(re.search(r"window\.trainwellLive\((.*)\);", text).group(1))


def test_a_running_page_polls_its_sidecar_and_shows_what_is_known(tmp_path):
    run = _fit_dir(tmp_path / "run")
    (run / STARTED_FILE).write_text(json.dumps({"params": 4547, "device": "cuda:0", "trainwell_version": "9.9",
                                                "torch_version": "2.13.0"}))
    page = build_fit_report(run, live=True).read_text()
    live = charts_of(page)["live"]
    assert live["file"] == LIVE_FILE and live["poll_ms"] > 0
    assert _sidecar(run) == {"stamp": live["stamp"], "running": True}  # the same stamp: no reload yet
    assert "running: 3 of 5 epochs done" in page and "<h3>Metrics so far</h3>" in page and "Final metrics" not in page
    assert "<td>4,547</td>" in page and "<td>cuda:0</td>" in page and "torch 2.13.0" in page
    (run / "summary.json").write_text(json.dumps({"stop_reason": "completed 5 epochs", "epochs": 3, "params": 4547,
                                                  "final": {"test_acc": 0.9, "test_loss": 0.3}}))
    final = build_fit_report(run, figures=()).read_text()
    assert "live" not in charts_of(final) and "<h3>Final metrics</h3>" in final  # no poller: updates stop
    assert _sidecar(run)["running"] is False and _sidecar(run)["stamp"] != live["stamp"]  # the open page reloads
    assert "class='status finished'" in final


def test_a_failed_run_has_its_own_badge_and_red_stop_mark(tmp_path):
    run = _fit_dir(tmp_path / "run")
    (run / "summary.json").write_text(json.dumps({"stop_reason": "diverged: loss nan", "failed": True, "epochs": 3,
                                                  "best_epoch": 0}))
    page = build_fit_report(run, figures=()).read_text()
    assert "class='status failed'" in page and ">failed: diverged: loss nan<" in page
    assert "finished:" not in page
    marks = charts_of(page)["lines"][1]["marks"]
    assert marks[-1]["label"] == "stop: diverged: loss nan" and marks[-1]["color"] == "#cf222e"


def test_a_log_linear_switch_where_values_span_decades(tmp_path):
    assert spans_decades([{"y": [100.0, 0.5, None, 0.01]}]) and not spans_decades([{"y": [2.0, 0.5, 0.1]}])
    assert not spans_decades([{"y": [0.0, -1.0]}]) and not spans_decades([{"y": [None]}])
    page = build_fit_report(_fit_dir(tmp_path / "run"), figures=()).read_text()
    charts = {c["id"]: c for c in charts_of(page)["lines"]}
    assert charts["chart-loss"].get("logToggle") and not charts["chart-lr"].get("logToggle")
    assert not charts["chart-acc"].get("logToggle")  # accuracies are not a log quantity


def _big_sweep(path):
    """9 settings x 3 seeds; one member diverged (its row says failed: true, as trainwell sweep writes it)."""
    path.mkdir()
    (path / ".trainwell-run").write_text(json.dumps({"kind": "sweep"}))
    rows, lines = [], []
    lrs, wds = [0.1, 0.03, 0.01], [0.0, 1e-4, 1e-3]
    for m in range(27):
        lr, wd, seed = lrs[m // 9], wds[(m // 3) % 3], m % 3
        acc = 0.5 + lr + wd * 10 + 0.01 * seed
        rows.append({"optim.lr": lr, "regularize.weight_decay": wd, "train.seed": seed, "train_loss": 1 - acc,
                     "train_acc": acc, "val_loss": 1 - acc, "val_acc": acc, "test_loss": 1 - acc, "test_acc": acc,
                     "epochs": 2, "stop_epoch": None, "failed": m == 4})
        lines += [json.dumps({"member": m, "epoch": e, "val_loss": 1 - acc + e, "val_acc": acc,
                              "train_loss": 1.0}) + "\n" for e in range(2)]
    (path / "results.json").write_text(json.dumps(rows))
    (path / "metrics.jsonl").write_text("".join(lines))
    (path / "summary.json").write_text(json.dumps({"mode": "population", "members": 27, "seeds": 3,
                                                   "grid": {"optim.lr": lrs, "regularize.weight_decay": wds}}))
    return path


def test_a_27_member_sweep_has_one_compact_legend_entry_per_setting(tmp_path):
    page = build_report(_big_sweep(tmp_path / "sw")).read_text()
    assert "failed=" not in page
    for chart in charts_of(page)["lines"]:
        curves = [s for s in chart["series"] if not s.get("band")]
        assert len(curves) == 9 and len(chart["bands"]) == 9 and len(chart["series"]) == 27
        assert all(len(s["label"]) <= 32 for s in curves), [s["label"] for s in curves]
        assert [s["label"] for s in curves if s["label"].startswith("★")] == ["★ lr=0.1, weight_decay=0.001"]
        assert all(s["label"] == "" for s in chart["series"] if s.get("band"))  # no legend entry of their own
    loss = charts_of(page)["lines"][0]
    assert loss["id"] == "sweep-val_loss" and not loss.get("logToggle")  # 0.3 to 1.4: no decades to switch
    settings = page.split("id='settings'")[1].split("</section>")[0]
    assert settings.count("<tr class='best'>") == 1 and "★ best" in settings
    members = page.split("id='members'")[1].split("</section>")[0]
    assert members.count("<tr class='failed'>") == 1 and ">failed<" in members


def test_setting_keys_are_the_grid_not_the_result_columns():
    rows = [{"optim.lr": 0.1, "train.seed": 0, "val_acc": 0.9, "failed": False, "error": "x", "epochs": 2}]
    assert group_report.setting_keys(rows, {"optim.lr": ["0.1"]}) == (["optim.lr"], True)
    assert group_report.setting_keys(rows, {}) == (["optim.lr"], True)  # without a grid: the dotted config keys
    assert group_report.short_labels(["optim.lr", "data.lr", "train.epochs"]) == {
        "optim.lr": "optim.lr", "data.lr": "data.lr", "train.epochs": "epochs"}
