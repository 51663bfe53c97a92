"""Multi-class hinge losses (``F.multi_margin_loss``, ``nn.MultiMarginLoss``, ``nn.MultiLabelMarginLoss``) are not
read as a soft IoU. While every margin is violated (the first steps) the hinge's gradient is 1 / (B C) off the label
and -(C - 1) / (B C) at it: a soft IoU's affine form at R = 1 / (C - 1), whose value meets the hinge's whenever the
off-label scores sum to about 0. The hinge's gradient sums to 0 over each example's classes, which no soft Dice or
IoU gradient does; a real soft Dice on raw scores is still read."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.dice_form import read_dice
from trainwell.doctor.dice_targets import read_dice_without_targets

#: initial batches (C = 3) whose multi-margin gradient and value met a soft IoU's to 1e-3 when the zero-sum rows
#: were still read (found by a scan of 300 seeds: about 1% of them)
COINCIDENT = (159, 193)


def _first_step(seed: int, classes: int = 3):
    torch.manual_seed(seed)
    x, y = torch.randn(64, 16), torch.randint(0, classes, (64,))
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, classes))
    out = model(x)
    out.retain_grad()
    loss = F.multi_margin_loss(out, y)
    loss.backward()
    return out.detach(), out.grad, y, float(loss)


@pytest.mark.parametrize("seed", COINCIDENT)
def test_a_hinge_with_every_margin_violated_is_no_iou(seed):
    z, g, y, value = _first_step(seed)
    assert g.unique().numel() == 2  # every margin violated: two gradient values, the IoU's affine form
    assert torch.allclose(g.sum(1), torch.zeros(64), atol=1e-9)
    assert read_dice(z, g, y, value) is None
    assert read_dice_without_targets(z, g, value) is None


def test_a_soft_iou_of_probabilities_is_still_read():
    torch.manual_seed(0)
    z = torch.rand(64, 3, requires_grad=True)
    y = torch.randint(0, 3, (64,))
    t = F.one_hot(y, 3).float()
    inter = (z * t).sum()
    loss = 1 - (inter + 1) / (z.sum() + t.sum() - inter + 1)
    loss.backward()
    assert read_dice(z.detach(), z.grad, y, float(loss))["loss"] == "IoU"


@pytest.mark.slow  # ~0.8 s: a watched loop or check run
@pytest.mark.parametrize("kind", ["functional", "module", "multilabel"])
def test_a_healthy_hinge_loop_reads_no_overlap_loss(kind):
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = (x @ torch.randn(16, 3)).argmax(1)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.MultiMarginLoss() if kind == "module" else nn.MultiLabelMarginLoss()
    with doctor.watch(model, opt, every=1) as w:
        for i in range(0, 512, 32):
            out = model(x[i:i + 32])
            if kind == "functional":
                loss = F.multi_margin_loss(out, y[i:i + 32])
            elif kind == "module":
                loss = criterion(out, y[i:i + 32])
            else:  # each row: its positive classes, then -1
                target = torch.full((32, 3), -1, dtype=torch.long)
                target[:, 0] = y[i:i + 32]
                loss = criterion(out, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    report = {v.check: v for v in w.report()}
    assert "loop: loss input" not in report or report["loop: loss input"].status == "pass"
    assert w._loss_inputs.overlaps == []  # no step read as a soft Dice or IoU
