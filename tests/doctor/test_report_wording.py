"""A printed report reads right for its user: counts agree with their nouns, the command's title says why its
readings begin at step 2, a healthy loss curve beside a loop bug stays a pass, and a diverged run's NaN in the
network names the learning rate that made it diverge."""

import re
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.plurals import counted
from trainwell.doctor.script_title import read_from
from trainwell.doctor.script_watch import ScriptWatch

RATE = "learning rate (loss curve)"


def _blobs(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _user_loop(lr: float, eval_left_on: bool = False, epochs: int = 4):
    """A user's MLP with dropout on 4 blobs, SGD with momentum, a validation each epoch (``eval_left_on``: the
    loop calls model.train() once, before the epochs, so every epoch after the first trains in eval mode)."""
    torch.manual_seed(0)
    x, y = _blobs(512)
    xv, yv = _blobs(128, seed=1)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(epochs):
            if not eval_left_on:
                model.train()
            for i in range(0, 512, 32):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
    return w.report()


def test_counts_agree_with_their_nouns():
    assert [counted(n, "observed step") for n in (0, 1, 2)] == ["0 observed steps", "1 observed step",
                                                                 "2 observed steps"]
    assert counted(1, "distinct batch") == "1 distinct batch" and counted(3, "batch") == "3 batches"
    assert counted(1, "backward() pass") == "1 backward() pass" and counted(4, "backward() pass").endswith("passes")


def test_the_command_s_title_says_what_the_first_step_was_for():
    assert read_from(1, 1, 1, 1) == ("step 1 showed which model and optimizer the loop trains: read from step 2; "
                                     "its loss curve from step 1")
    assert read_from(2, 3, 2, 2) == "steps 1-2 showed which models and optimizers the loop trains: read from step 3"
    assert read_from(1, 1, 1, 1, passes=True) == (
        "backward() pass 1 showed which model and optimizer the loop trains; no optimizer.step() ran, so each pass "
        "counts as a step: read from pass 2; its loss curve from pass 1")


STEP_FORGOTTEN = """
import torch
import torch.nn.functional as F
from torch import nn
torch.manual_seed(0)
x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    for i in range(0, 64, 16):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).backward()
"""


@pytest.mark.slow  # ~1 s: a script under the command's reader
def test_a_loop_that_never_steps_prints_its_one_batch_and_step_in_the_singular(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(STEP_FORGOTTEN))
    [report] = ScriptWatch(every=50).run(str(path), [])
    assert report["loop: optimizer.step() runs"].status == "fail"
    assert report["loop: optimizer.step() runs"].value.endswith(" steps recorded, optimizer.step() never ran")
    assert report["loop: inputs"].value == "1 distinct batch in 1 observed step"
    # no optimizer.step() ran: the title counts what it read, the loop's backward() passes
    assert re.search(r"\(backward\(\) pass(es 1-\d+| 1) showed which model and optimizer the loop trains; no "
                     r"optimizer\.step\(\) ran, so each pass counts as a step: read from pass \d+; its loss curve "
                     r"from pass 1\)$", report.title), report.title


@pytest.mark.slow  # ~1 s: 64 watched steps
def test_a_good_loss_curve_beside_a_loop_bug_stays_a_pass():
    report = _user_loop(lr=0.05, eval_left_on=True)
    assert report["loop: train/eval mode"].status in ("warn", "fail")
    curve = report[RATE]
    assert curve.value.startswith("good") and curve.status == "pass" and "explained by" not in curve.value
    assert "of the loss level (its steps' scatter around a running mean, second half)" in curve.value  # noise, said
    assert report.likely_cause.check == "loop: train/eval mode"


@pytest.mark.slow  # ~1 s: a diverging run's NaN readings
def test_a_diverged_run_s_nan_activations_and_gradients_name_the_learning_rate_as_their_cause():
    report = _user_loop(lr=5.0, epochs=2)
    assert report[RATE].status == "fail" and report[RATE].value.startswith("too high: loss became")
    nan = [v for v in report if v.check.startswith("monitor: non-finite")]
    assert nan and all(v.status == "info" and v.value.endswith(f"(explained by '{RATE}')") for v in nan)
    assert all(v.advice.startswith(f"fix '{RATE}' first: the training diverged") for v in nan)
    assert report.likely_cause.check == RATE
    lines = str(report).splitlines()
    rows = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert rows[0] == RATE and all("monitor: non-finite" not in line or "info" in line
                                   for line in lines if line.startswith("│"))


def test_the_phase_column_says_when_each_row_was_read():
    from trainwell.doctor.report import Report
    from trainwell.doctor.verdict import Verdict

    report = Report([Verdict("symmetry", "fail", "identical units in 0.weight", "distinct hidden units", "fix"),
                     Verdict("loop: labels", "warn", "sorted", "mixed", "shuffle"),
                     Verdict("overfitting", "pass", "no onset", "-")], phases=["pre", "monitor", "post"])
    header = next(line for line in str(report).splitlines() if "┃" in line and "check" in line)
    assert header.split("┃")[1].strip() == "when"
    rows = {line.split("│")[2].strip(): line.split("│")[1].strip() for line in str(report).splitlines()
            if line.startswith("│")}
    assert rows == {"symmetry": "before training", "loop: labels": "during training"}


@pytest.mark.slow  # ~1 s: 64 watched steps
def test_a_healthy_loop_s_monitors_say_what_they_read_and_how_often():
    report = _user_loop(lr=0.05)
    assert report.status == "pass", report
    assert re.fullmatch(r"\d+ snapshots? of the network \(one every 10 steps\), no warnings",
                        report["monitors"].value)


def test_a_merged_row_says_once_what_explains_it_even_when_the_cause_s_name_has_parentheses():
    from trainwell.doctor.report_order import merged
    from trainwell.doctor.verdict import Verdict

    why = f" (explained by '{RATE}')"
    rows = [(Verdict("monitor: non-finite activations", "info", f"in layer '{name}' at step 50: 100% NaN/Inf{why}",
                     "finite values", "fix it"), "monitor") for name in ("body.0", "body.1", "body.3", "head")]
    [(row, _)] = merged(rows)
    assert row.value.count("explained by") == 1 and row.value.endswith(f"; and 1 more like these{why}")


@pytest.mark.slow  # ~1 s: the command line on a script
def test_the_command_points_to_its_own_option_for_the_passes_readings(tmp_path, capsys):
    from trainwell.cli import main

    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(STEP_FORGOTTEN))
    assert main(["watch", "--every", "50", str(path)]) == 1
    out = capsys.readouterr().out
    passed = next(line for line in out.splitlines() if line.startswith("passed ("))
    assert passed.endswith("(their readings: run it again with --json)") and "report.table" not in out


@pytest.mark.slow  # ~1 s: the pre-flight checklist
def test_the_gradient_check_says_what_its_number_is():
    torch.manual_seed(0)
    x, y = _blobs(64)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    report = doctor.check(model, x, y, F.cross_entropy, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    value = report["gradient check (data loss)"].value
    assert report["gradient check (data loss)"].status == "pass"
    assert re.fullmatch(r"largest relative error \S+ \((good|ok)(, \d+ of \d+ sampled gradients below \S+, not "
                        r"compared)?\)", value), value
