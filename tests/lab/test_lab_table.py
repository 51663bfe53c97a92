"""benchmarks/lab_table.py renders RESULTS.md's lab table from a run folder: every experiment listed (missing ones
as "not run"), each seed's verdict, the control's, and each criterion's interval as the summaries hold it."""

import importlib.util
import json
from pathlib import Path

from trainwell.lab import base, registry

_path = Path(__file__).parents[2] / "benchmarks" / "lab_table.py"
_spec = importlib.util.spec_from_file_location("lab_table", _path)
lab_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_table)


def _summary(statuses, effect):
    per = []
    for k, st in enumerate(statuses):
        lo, hi = {"pass": (0.1, 0.3), "fail": (-0.3, -0.1), "inconclusive": (-0.1, 0.3)}[st]
        crit = base.criterion("gain", effect, lo, hi, 0.0, method="t")
        per.append({"seed": k, "verdict": {"status": crit["status"], "evidence": {"criteria": [crit]}}})
    return {"per_seed": per, "wall_s": 12.5}


def _write(path: Path, obj) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(obj), encoding="utf-8")


def test_the_table_reports_every_seed_the_control_and_each_interval(tmp_path):
    first, second = registry.names()[:2]
    _write(tmp_path / first, _summary(["pass", "pass", "inconclusive"], 0.2))
    _write(tmp_path / first / "control", _summary(["fail"], -0.2))
    rows = lab_table.experiment_rows(tmp_path)
    mine = next(r for r in rows if r.startswith(f"| {first} |"))
    assert "pass (seed 0), pass (seed 1), inconclusive (seed 2)" in mine
    assert "**unstable**" in mine and "| fail |" in mine and "| 12.5 |" in mine
    assert registry.CATALOG[first].claim.replace("|", "/") in mine
    assert "| not run | - |" in next(r for r in rows if r.startswith(f"| {second} |"))
    assert len(rows) == 2 + len(registry.names())  # header, rule, one row per experiment
    crit = [r for r in lab_table.criterion_rows(tmp_path) if r.startswith(f"| {first} |")]
    assert crit == [f"| {first} | gain | seed 0: 0.2 [0.1, 0.3] pass; seed 1: 0.2 [0.1, 0.3] pass; "
                    f"seed 2: 0.2 [-0.1, 0.3] inconclusive | 0 | t |"]


def test_a_missing_folder_is_a_one_line_error(tmp_path, capsys):
    assert lab_table.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
