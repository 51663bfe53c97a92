"""What long commands show while they run and print when they end: stdout and stderr read separately."""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
from rich.console import Console
from torch import nn

from trainwell.cli import main
from trainwell.sweep_table import cell, sweep_table
from trainwell.train.progress import checks_shown

TINY = ["data.name=spirals", "data.options={arms = 3, n_per_class = 30}", "model.kind=mlp", "model.hidden=[8]",
        "train.epochs=2", "train.batch_size=30", "doctor.preflight=false", "doctor.monitor_every=0",
        "report.enabled=false"]
SETS = [a for s in TINY for a in ("--set", s)]


def test_the_preflight_shows_n_of_m_as_each_check_starts(monkeypatch):
    from trainwell.doctor import preflight as pf
    from trainwell.doctor.verdict import Verdict

    for slow in ("overfit_tiny_subset", "input_independent_baseline"):  # each trains copies: seconds, not needed here
        monkeypatch.setattr(pf, slow, lambda *a, name=slow, **k: Verdict(name, "pass", "-", "-"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    stream = io.StringIO()
    with checks_shown(stream=stream):
        verdicts = pf.run_all(model, x, y, nn.functional.cross_entropy, num_classes=3)
    lines = stream.getvalue().splitlines()
    m = len(lines)
    assert m == len(verdicts) >= 10
    assert [re.match(r"pre-flight \((\d+) of (\d+)\): ", line).groups() for line in lines] == \
        [(str(n), str(m)) for n in range(1, m + 1)]
    assert lines[1].endswith(f"{verdicts[1].check}...")
    quiet = io.StringIO()
    with checks_shown(quiet=True, stream=quiet):
        pf.run_all(model, x, y, nn.functional.cross_entropy, num_classes=3)
    assert quiet.getvalue() == ""  # quiet, and outside the block, nothing is shown


@pytest.mark.slow
def test_a_fit_shows_its_preflight_checks_on_stderr(workdir, capsys):
    sets = [a for s in [*TINY, "doctor.preflight=true"] for a in ("--set", s)]
    assert main(["fit", *sets, "--out", "r"]) == 0
    out, err = capsys.readouterr()
    assert "pre-flight (1 of " in err and "pre-flight (" not in out


def test_the_sweep_table_prints_as_fit_does_and_its_headers_fit_120_columns():
    rows = [{"optim.lr": 0.03, "model.hidden": "[128, 128]", "train.seed": s, "train_loss": 0.1, "train_acc": 0.98765,
             "val_loss": 0.23456, "val_acc": 0.9575, "test_loss": 0.2, "test_acc": 0.958, "epochs": 15,
             "stop_epoch": None if s else 11, "failed": False} for s in range(3)]
    console = Console(width=120, record=True, color_system=None)
    console.print(sweep_table(rows, "sweep: 3 members"))
    text = console.export_text()
    assert "None" not in text and "False" not in text
    header = next(line for line in text.splitlines() if "optim.lr" in line)
    for name in ("optim.lr", "model.hidden", "train.seed", "train acc", "val acc", "test acc", "val loss", "epochs",
                 "stopped"):
        assert name in header, (name, header)  # whole, on the header's one line
    assert "95.80%" in text and "98.77%" in text and "0.2346" in text and "epoch 12" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert cell(None) == "-" and cell(True) == "yes" and cell(0.003) == "0.003" and cell(0.5, "percent") == "50.00%"


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_sweep_json_keeps_stdout_for_the_json_and_shows_progress_on_stderr(workdir, capsys):
    assert main(["sweep", *SETS, "--grid", "optim.lr=0.1,0.03", "--out", "s", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)  # stdout is the JSON and nothing else
    assert [r["optim.lr"] for r in rows] == [0.1, 0.03]
    assert "sweep: 2 members, trained as one population" in err
    # the fit loop's progress lines (stderr is not a terminal here), saying they are the population's mean
    assert re.search(r"\[2/2\] mean of 2 members: epoch 2", err)


@pytest.mark.slow
def test_prune_shows_its_rounds_and_report_prints_the_path_it_wrote(workdir, capsys):
    sets = [a for s in [*TINY[:-1], "report.enabled=true"] for a in ("--set", s)]
    assert main(["prune", *sets, "--rounds", "2", "--out", "p"]) == 0
    out, err = capsys.readouterr()
    for r in range(3):
        assert f"prune: round {r} of 2" in err
    assert "round 1 of 2: the ticket at" in err and re.search(r"\[2/2\] epoch 2", err)
    assert "prune:" not in out
    assert main(["report", "p"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("report.html") and (workdir / out.strip()).is_file() and err == ""


def test_fit_names_its_report_only_when_it_wrote_one(workdir, capsys):
    from trainwell.cli_tables import result_lines

    assert main(["fit", *SETS, "--out", "r", "--quiet"]) == 0  # report.enabled = false
    out = capsys.readouterr().out
    assert not (workdir / "r" / "report.html").exists()
    assert "run dir: r" in out and "report" not in out.split("run dir:")[1]
    summary = json.loads((workdir / "r" / "summary.json").read_text())
    assert result_lines(summary, "r", report=True).endswith("run dir: r  (report: r/report.html)")


def test_a_sweep_grid_typo_is_named_as_fit_set_names_it(workdir, capsys):
    assert main(["fit", *SETS, "--set", "optim.lrr=0.1", "--out", "f"]) == 2
    fit_err = capsys.readouterr().err.strip()
    assert main(["sweep", *SETS, "--grid", "optim.lrr=0.1,0.2", "--out", "s"]) == 2
    sweep_err = capsys.readouterr().err.strip()
    expected = "unknown config key 'optim.lrr': did you mean 'optim.lr'? allowed keys in optim are name, lr, "
    assert expected in fit_err and expected in sweep_err and len(sweep_err.splitlines()) == 1
    assert sweep_err.split("error: ")[1] == fit_err.split("error: ")[1]
    assert not (workdir / "s").exists()


def test_a_sweep_names_each_failed_member_with_its_reason_under_the_table(workdir, capsys):
    """The table's "failed" column says only yes: the line under it names the member and why (its summary.json's
    stop_reason), here a rate of 1e9 whose loss ends far above an untrained model's."""
    sets = [a for s in TINY for a in ("--set", s)]
    assert main(["sweep", *sets, "--grid", "optim.lr=1e9,0.01", "--out", "sw"]) == 0
    lines = capsys.readouterr().out.splitlines()
    reason = json.loads((workdir / "sw" / "member-0" / "summary.json").read_text())["stop_reason"]
    assert [line for line in lines if line.startswith("failed: ")] == [f"failed: member-0 ({reason})"]
    assert "a failed run" in reason or "non-finite" in reason
