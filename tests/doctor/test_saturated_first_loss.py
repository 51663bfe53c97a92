"""A classifier fed one raw column (an amount in the hundreds): its first scores are large, its softmax saturates
after the first update, and the rows saturated on their own label send a gradient that underflows to 0. The loss's
weight is still read as a mean (the first loss is compared with ln C, not with the readable rows' share of it), and
the first-loss reading names the raw column as its cause."""

import math
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.loss_form import read_form
from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import pytest
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x @ torch.randn(8, 4)).argmax(1)
x[:, 3] = 300.0 + 100.0 * torch.rand(256)  # an amount left in raw units
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for epoch in range(2):
    perm = torch.randperm(256)
    for i in range(0, 256, 64):
        idx = perm[i:i + 64]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _saturated_step(reduction: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores where 20 of 64 rows put all their mass on their own label (their gradient underflows to 0), 10 on
    another class, the rest ordinary."""
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (64,), generator=g)
    z = torch.randn(64, 4, generator=g)
    z[:20] = -150.0
    z[torch.arange(20), y[:20]] = 150.0  # saturated on the label
    z[20:30] = -150.0
    z[torch.arange(20, 30), (y[20:30] + 1) % 4] = 150.0  # saturated on another class
    z.requires_grad_()
    F.cross_entropy(z, y, reduction=reduction).backward()
    return z.detach(), z.grad, y


def test_rows_saturated_on_their_label_count_at_the_mean_weight():
    z, grad, _ = _saturated_step("mean")
    assert int((grad.abs().sum(1) == 0).sum()) == 20  # their gradient underflowed
    form = read_form(z, grad)
    assert form["form"] == "cross_entropy"
    assert abs(form["weight"] - 1.0) < 1e-6 and form["rows"] == 64


def test_a_sum_over_saturated_rows_still_reads_as_the_row_count():
    z, grad, _ = _saturated_step("sum")
    form = read_form(z, grad)
    assert form["form"] == "cross_entropy" and abs(form["weight"] - 64) < 1e-3


def test_class_weights_leave_the_saturated_rows_unread():
    z, _, y = _saturated_step("mean")
    z = z.clone().requires_grad_()
    F.cross_entropy(z, y, weight=torch.tensor([1.0, 2.0, 3.0, 4.0])).backward()
    form = read_form(z.detach(), z.grad)
    assert form["form"] == "cross_entropy" and form.get("underflowed") is None  # weights differ: not guessed


def test_ignored_rows_are_not_counted():
    z, _, y = _saturated_step("mean")
    y = y.clone()
    y[40:] = -100  # ignored rows with ordinary scores
    z = z.clone().requires_grad_()
    F.cross_entropy(z, y).backward()
    form = read_form(z.detach(), z.grad)
    assert abs(form["weight"] - 1.0) < 1e-6 and form["rows"] == 40


@pytest.mark.slow  # ~2 s: a 8-step script under the command
def test_a_raw_column_under_the_command_quotes_ln_c_and_names_the_column(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    runner = ScriptWatch(every=50)
    reports = runner.run(str(path), [])
    assert runner.error is None, runner.error
    verdicts = {v.check: v for r in reports for v in r}
    loss = verdicts["loop: loss"]
    assert f"vs {math.log(4):.4g} (ln C" in loss.value  # ln 4, not a share of it read after the first update
    assert loss.status == "info" and "'loop: inputs'" in loss.value and "column 3" in loss.advice
    assert verdicts["loop: inputs"].status == "warn" and "column 3 (mean" in verdicts["loop: inputs"].value


def test_standardized_inputs_name_no_column(tmp_path):
    model = nn.Sequential(nn.Linear(8, 4))
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(10):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
    report = {v.check: v for v in w.report()}
    assert "column" not in str(report["loop: inputs"].value)
    assert "first loss" in report["loop: loss"].value and report["loop: loss"].status == "pass"
