"""A printed doctor report reads from the cause down: the likely cause and its fix first, problems before passes,
a cause before what it explains, one row per finding, numbers to four significant digits; ``trainwell watch`` says
how long the watched script ran and why it exits with its status."""

import json
import re
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.cli import main
from trainwell.doctor.report import Report
from trainwell.doctor.report_order import merged, reading_order, short_numbers
from trainwell.doctor.verdict import Verdict

GRADIENTS = "loop: gradients at optimizer.step()"


def _watched_loop(zero_grad: bool) -> Report:
    """A user's classifier trained by their own loop under ``doctor.watch`` (``zero_grad``: the fix in place)."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(5):
            model.train()
            for i in range(0, 256, 32):
                xb, yb = x[i:i + 32], y[i:i + 32]
                if zero_grad:
                    opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


def _lines(report: Report) -> list[str]:
    return [line for line in str(report).splitlines() if line.strip()]


def _first_row(text: str) -> str:
    """The check named by the first row of a printed table."""
    rows = [line for line in text.splitlines() if line.startswith("│")]
    return rows[0].split("│")[1].strip()


def test_a_loop_without_zero_grad_prints_its_cause_first_with_the_fix():
    report = _watched_loop(zero_grad=False)
    assert report[GRADIENTS].status == "fail"
    lines = _lines(report)
    assert lines[0].startswith("trainwell doctor: watching Sequential: fail")
    assert lines[1].startswith(f"likely cause: {GRADIENTS} (fail): ")
    assert lines[2].lstrip().startswith("what to do:") and "optimizer.zero_grad()" in " ".join(lines[2:4])
    assert _first_row(str(report)).startswith("loop: gradients at")  # the table's first row is the cause too
    # the passes are one line of names, after the table, not rows
    passed = next(line for line in lines if line.startswith("passed ("))
    assert "loop: optimizer holds the parameters" in passed
    assert not any("│" in line and "│ pass" in line for line in lines)


def test_every_number_a_report_prints_has_at_most_four_significant_digits():
    report = _watched_loop(zero_grad=False) + Report([Verdict("initial loss", "pass", 1.3862943611198906,
                                                              "ln C = ln 4 = 1.3862943611")])
    text = str(report)
    for number in re.findall(r"(?<![\d.])\d+\.\d+", text):
        assert len(number.replace(".", "").lstrip("0")) <= 4, number


def test_a_healthy_loop_prints_no_warn_or_fail_and_shows_its_passes():
    report = _watched_loop(zero_grad=True)
    assert not report.failed and not report.warnings and report.likely_cause is None
    text = str(report)
    assert "likely cause" not in text and "passed (" not in text  # nothing to point at: every reading is a row
    assert "loop: gradients at" in text and "loop: optimizer holds the" in text
    assert not re.search(r"│\s*(warn|fail)\s*│", text)


def test_short_numbers_round_long_decimals_to_four_significant_digits_and_leave_integers():
    assert short_numbers("first loss 1.38629436 vs ln C = 1.386") == "first loss 1.386 vs ln C = 1.386"
    assert short_numbers("ratio 0.000123456x at step 12345") == "ratio 0.0001235x at step 12345"
    assert short_numbers("1.234567e+05 in body.0.weight, torch 2.13.0") == "1.235e+05 in body.0.weight, torch 2.13.0"
    for text in ("0.953x", "7.76e+11x", "0.00e+00"):
        assert short_numbers(text) == text


def test_a_named_cause_is_read_before_what_it_explains_and_loop_causes_before_monitors():
    vs = [Verdict("monitor: dead ReLUs", "warn", "body.1 at step 50: 100% of units never active"),
          Verdict("overfit a tiny subset", "fail", "loss 1.39 -> 1.34", advice="fix 'variance propagation' first"),
          Verdict("learning rate (loss curve)", "info", "flat (explained by 'loop: labels')"),
          Verdict("loop: labels", "warn", "sorted"),
          Verdict("variance propagation", "fail", "std 1 -> 1e-4"),
          Verdict("loop: loss", "pass", "mean cross-entropy")]
    order = [vs[i].check for i in reading_order(vs, ["monitor", "pre", "post", "monitor", "pre", "monitor"])]
    assert order == ["variance propagation", "overfit a tiny subset", "loop: labels", "monitor: dead ReLUs",
                     "learning rate (loss curve)", "loop: loss"]
    assert Report(vs).likely_cause.check == "variance propagation"


def test_one_finding_read_in_several_layers_is_one_row():
    rows = [(Verdict("monitor: non-finite activations", "fail", f"in layer '{name}' at step 50: 100% NaN/Inf",
                     "finite values", "lower the learning rate"), "monitor") for name in ("a", "b", "c", "d", "e")]
    rows.append((Verdict("monitor: dead ReLUs", "info", "fc at step 50: 90% (explained by 'monitor: x')"), "monitor"))
    rows.append((Verdict("monitor: dead ReLUs", "info", "fc2 at step 50: 80% (explained by 'monitor: x')"), "monitor"))
    [nan, dead] = merged(rows)
    assert nan[0].value.startswith("in layer 'a'") and "in layer 'c'" in nan[0].value
    assert nan[0].value.endswith("; and 2 more like these") and nan[0].advice == "lower the learning rate"
    assert dead[0].value == "fc at step 50: 90%; fc2 at step 50: 80% (explained by 'monitor: x')"
    report = Report([v for v, _ in rows], phases=[p for _, p in rows])
    assert sum(line.startswith("│") and "non-finite" in line for line in str(report).splitlines()) == 1


SCRIPT = """
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for epoch in range(4):
    for i in range(0, 256, 32):
        loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])  # opt.zero_grad() forgotten
        loss.backward()
        opt.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}")
"""


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_the_watch_command_prints_the_cause_first_and_says_how_long_it_ran_and_why_it_exits(tmp_path, capsys):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    assert main(["watch", "--every", "10", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "epoch 0: loss " + lines[0].split()[-1]  # the script's own output first, as it printed it
    title = next(i for i, line in enumerate(lines) if line.startswith("trainwell watch: train.py: "))
    assert lines[title + 1].startswith(f"likely cause: {GRADIENTS} (fail)")
    assert _first_row(out) == GRADIENTS  # not a terminal: the table is as wide as its rows
    footer = err.strip().splitlines()[-1]
    assert re.fullmatch(r"trainwell watch: .*train\.py ran \d+\.\d s under the watch \(its own output is above, as "
                        r"it printed it\); 1 training loop read: 1 fail(, \d+ warn)?; exit 1 \(a check failed\)",
                        footer), footer
    assert main(["watch", "--json", "--every", "10", str(path)]) == 1
    out = capsys.readouterr().out
    [loop] = json.loads(out[out.index("\n[") + 1:])
    assert loop["status"] == "fail" and loop["likely_cause"] == GRADIENTS


def test_a_zero_initialized_network_s_variance_reading_prints_no_guard_number():
    from trainwell.doctor.activations import variance_propagation

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    for p in model.parameters():
        nn.init.zeros_(p)
    v = variance_propagation(model, torch.randn(64, 8), torch.randint(0, 3, (64,)), F.cross_entropy)
    assert v.status == "fail" and "(both 0)" in v.value and "e+30" not in v.value


def test_trainwell_fit_s_table_of_warnings_and_failures_reads_in_the_same_order():
    from rich.console import Console

    from trainwell import cli_tables

    rows = [{"check": "monitor: dead ReLUs", "status": "warn", "value": "fc1 at step 50: 0.912345", "expected": "-",
             "advice": "lower the learning rate", "phase": "monitor"},
            {"check": "overfitting", "status": "fail", "value": "gap 1.23456789", "expected": "a finite loss",
             "advice": "", "phase": "post"}]
    console = Console(width=200, record=True, color_system=None)
    console.print(cli_tables.verdicts(rows, "doctor: warnings and failures"))
    text = console.export_text()
    assert _first_row(text) == "overfitting" and "gap 1.235" in text and "a finite loss" in text


def test_the_same_fix_is_written_out_once():
    fix = "initialize weights randomly (nn.init.kaiming_normal_ on each hidden layer): zero init never breaks symmetry"
    expected = "distinct hidden units"
    report = Report([Verdict("symmetry", "fail", "identical units in 0.weight", expected, fix),
                     Verdict("loop: symmetry", "fail", "identical units after 159 steps", expected, fix)],
                    phases=["pre", "monitor"])
    text = str(report)
    assert text.count("kaiming_normal_") == 2  # the likely cause's line and the first row; the second row points up
    assert "as for 'loop: symmetry' above" in text


def test_a_rate_far_too_high_is_told_the_range_to_try_in_its_own_numbers():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=5.0, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(4):
            for i in range(0, 256, 32):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    report = w.report()
    curve = report["learning rate (loss curve)"]
    assert curve.status == "fail" and "lower the learning rate (by 3-10x: from 5 to 0.5-1.7; with momentum 0.9 " \
        "the effective rate lr / (1 - 0.9) goes from 50 to 5-17)" in curve.advice, curve.advice
    assert report.likely_cause.check == "learning rate (loss curve)"


@pytest.mark.slow  # ~0.5 s: a watched loop
def test_a_flat_curve_at_a_rate_far_too_low_is_told_its_measured_factor():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(4):
            for i in range(0, 256, 32):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    curve = w.report()["learning rate (loss curve)"]
    assert curve.status == "warn" and curve.value.startswith("flat"), curve
    assert "x below the healthy ~1e-3: raise the learning rate (by " in curve.advice, curve
    assert "from 1e-05 to " in curve.advice, curve


def test_a_scheduled_rate_keeps_the_plain_factor():
    from trainwell.doctor.rate_numbers import with_rate

    slow = Verdict("learning rate (loss curve)", "warn", "too low", "", "raise the learning rate (by 3-10x)")
    assert with_rate(slow, [0.001] * 5, []).advice == "raise the learning rate (by 3-10x: from 0.001 to 0.003-0.01)"
    tenfold = Verdict(slow.check, "warn", "flat", "", "update/weight 0.5: lower the learning rate (by 10x)")
    assert with_rate(tenfold, [2.0] * 3, []).advice.endswith("lower the learning rate (by 10x: from 2 to 0.2)")
    assert with_rate(slow, [0.1, 0.05, 0.01], []) is slow  # a schedule: which value to scale is the user's choice
    assert with_rate(slow, [0.1] * 3, [[0.1, 0.01]] * 3) is slow  # two groups at two rates
    assert with_rate(Verdict(slow.check, "pass", "good", "", ""), [0.1] * 3, []).advice == ""
