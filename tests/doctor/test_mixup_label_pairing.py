"""Mixup (Zhang et al. 2018) trains each mixed input ``lam * x + (1 - lam) * x[index]`` on
``lam * ce(out, y) + (1 - lam) * ce(out, y[index])``: on a step with lam < 1/2 the partner's label weighs more, so
the scores' one negative gradient entry names ``y[index]``, another position's label, every label used once. That
is not the flattening bug ``loop: labels paired with outputs`` names; a loop that scores its outputs against
another row's label without mixing the inputs still is."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: labels paired with outputs"


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.body(x)


def _run(mixup: bool):
    torch.manual_seed(0)
    rng = np.random.default_rng(2749)  # the loop's own draws of lam: all 12 below 1/2, most below 0.02
    centres = torch.randn(10, 12) * 2
    y_all = torch.randint(0, 10, (640,))
    x_all = centres[y_all] + torch.randn(640, 12)
    model = Classifier()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=4) as w:
        for step in range(12):
            x, y = x_all[step * 16 % 640:][:16], y_all[step * 16 % 640:][:16]
            index = torch.randperm(len(x))
            if mixup:
                lam = float(rng.beta(0.2, 0.2))
                out = model(lam * x + (1 - lam) * x[index])
                loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[index])
            else:  # the labels of other rows: the bug
                loss = F.cross_entropy(model(x), y[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {mixup: _run(mixup) for mixup in (True, False)}


@pytest.mark.slow  # the fixture: two 12-step loops, 2-5 s
def test_mixup_s_partner_labels_are_not_read_as_outputs_paired_elsewhere(reports):
    found = reports[True]
    assert NAME not in found
    assert found["loop: mixed labels"].status == "pass"  # read as mixup with the inputs' permutation


@pytest.mark.slow
def test_labels_of_other_rows_without_mixing_still_fail(reports):
    assert reports[False][NAME].status == "fail"
