"""``trainwell watch``: what the loop's first step shows (its watch begins after it) read from the script's own
calls, so that a loop broken by its first update is named as the explicit ``doctor.watch`` names it."""

import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F

from trainwell.doctor.script_first_step import unscaled
from trainwell.doctor.script_watch import ScriptWatch, saved_target

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
CASE = sys.argv[1]
BUG = sys.argv[2] == "bug"
if CASE == "uniform" and BUG:  # weights_init with nn.init.uniform_: U(0, 1), every weight positive
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight)
lr = 30.0 if CASE == "rate" and BUG else 0.01 if CASE == "root" else 0.1
opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9 if lr < 1 else 0.0)


def loss_of(out, t):
    if CASE == "minus":  # label smoothing written by hand
        soft = F.one_hot(t, 4).float() * 0.9 + 0.025
        ce = -(soft * F.log_softmax(out, dim=1)).sum(1).mean()
        return -ce if BUG else ce
    if CASE == "root":  # a contrastive loss on the distances between the outputs
        sq = ((out[:, None] - out[None]) ** 2).sum(-1)
        d = sq.sqrt() if BUG else (sq + 1e-12).sqrt()
        same = (t[:, None] == t[None]).float()
        return (same * d ** 2 + (1 - same) * F.relu(2.0 - d) ** 2).mean()
    if CASE == "swapped":  # one-vs-rest
        onehot = F.one_hot(t, 4).float()
        return F.binary_cross_entropy_with_logits(onehot, out) if BUG else \\
            F.binary_cross_entropy_with_logits(out, onehot)
    return F.cross_entropy(out, t)


for epoch in range(6):
    perm = torch.randperm(256)
    for i in range(8):
        idx = perm[i * 32:(i + 1) * 32]
        opt.zero_grad()
        loss = loss_of(model(x[idx]), y[idx])
        if CASE == "scale":  # a static loss scale, divided out of .grad in the healthy loop
            (loss * 1024).backward()
            if not BUG:
                for p in model.parameters():
                    p.grad /= 1024
        else:
            loss.backward()
        opt.step()
"""


def test_a_loss_times_a_power_of_two_is_read_as_the_loss_and_its_static_scale():
    z = torch.randn(4, 3, requires_grad=True)
    loss = F.cross_entropy(z, torch.tensor([0, 1, 2, 0]))
    inner, scale = unscaled(loss * 1024)
    assert scale == 1024 and torch.allclose(inner, loss)
    assert unscaled(1024.0 * loss)[1] == 1024
    for other in (loss * 3, loss / 4, loss * torch.tensor(8.0, requires_grad=True), loss):
        assert unscaled(other) == (other, None)  # not a power of two, a division, a learnt weight, no factor


def test_a_loss_given_targets_then_outputs_has_its_labels_read_from_the_argument_without_a_gradient():
    out = torch.randn(6, 4, requires_grad=True) * 2
    onehot = F.one_hot(torch.tensor([0, 3, 1, 2, 2, 0]), 4).float()
    assert saved_target(F.binary_cross_entropy_with_logits(onehot, out)) is onehot  # (targets, outputs)
    assert saved_target(F.binary_cross_entropy_with_logits(out, onehot)) is onehot
    soft = out.softmax(1)  # soft targets with a gradient, the input too: kept as they were read
    assert saved_target(F.binary_cross_entropy_with_logits(out, soft)) is not None


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("first_step") / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return str(path)


def _alarms(path: str, case: str, side: str) -> dict:
    runner = ScriptWatch(every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [report] = runner.run(path, [case, side])
    assert runner.error is None and runner.unread in (1, 2)  # (an earlier test's optimizer may be alive)
    return {v.check: str(v.value) for v in report if v.status in ("warn", "fail")}


@pytest.mark.slow  # ~1.3 s each: the bug's script and its twin's, 48 steps each
@pytest.mark.parametrize("case, check, said", [
    # lr=30: the first update blows the loss up; the first loss read is the first step's, not the second's
    ("rate", "learning rate (loss curve)", "too high: loss became nan"),
    # a hand-written cross-entropy without its minus sign starts at -ln C: read on the first step's loss
    ("minus", "loop: loss", "near -ln C"),
    # (loss * 1024).backward() never divided out: read at the first step, before the run diverges
    ("scale", "loop: loss", "multiplied by 1024 before backward()"),
    # a distance's sqrt at 0: the first step's finite loss with a NaN gradient
    ("root", "loop: square root at 0", "loss was finite but its gradient was not"),
    # BCE with logits given (targets, outputs): the labels are the argument without a gradient
    ("swapped", "loop: loss", "given (targets, outputs)"),
    # weights drawn U(0, 1): read before the first step updates them
    ("uniform", "loop: weight init", "2 weight tensors start with every entry >= 0: '0.weight'"),
])
def test_a_loop_broken_by_its_first_step_is_named_and_its_healthy_twin_is_clean(script, case, check, said):
    bug = _alarms(script, case, "bug")
    assert said in bug.get(check, ""), bug
    assert "first loss" not in bug.get("loop: loss", "") or case == "minus"  # not the second step's loss
    assert _alarms(script, case, "twin") == {}
