"""Label smoothing applied twice: targets smoothed by hand given to nn.CrossEntropyLoss(label_smoothing=e) train
towards an epsilon of 1 - (1 - e)^2 (torch's own smoothing of soft targets is the oracle). doctor.watch names it;
a single smoothing of 0.1, 0.19 by hand or 0.2 passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: label smoothing"
C = 4


def _run(loss_of, epochs=2, every=5):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 10, generator=g)
    y = (x @ torch.randn(10, C, generator=g)).argmax(1)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=every) as w:
        for _ in range(epochs):
            for i in range(0, len(x), 32):
                loss = loss_of(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 32])
    return [v for v in w.report() if v.check == NAME]


def _smooth(y, e):
    return F.one_hot(y, C).float() * (1 - e) + e / C


def test_the_oracle_smoothed_targets_smoothed_again_equal_one_smoothing_of_1_minus_0_9_squared():
    z, y = torch.randn(8, C), torch.randint(0, C, (8,))
    twice = F.cross_entropy(z, _smooth(y, 0.1), label_smoothing=0.1)
    assert torch.allclose(twice, F.cross_entropy(z, y, label_smoothing=1 - 0.9**2))


@pytest.mark.parametrize("e", [0.1, 0.2])
def test_targets_smoothed_by_hand_and_by_the_loss_are_named(e):
    crit = nn.CrossEntropyLoss(label_smoothing=e)
    found = _run(lambda out, yb: crit(out, _smooth(yb, e)))
    assert len(found) == 1 and found[0].status == "warn"
    assert f"= {e:g} applied twice" in found[0].value and f"label_smoothing={e:g}" in found[0].value


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_longer_run_whose_later_observed_steps_read_no_loss_form_is_named_too():
    # the loss's form is read on the first observed steps only: the later ones (every 10th step over 5 epochs) do
    # not outvote them
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    found = _run(lambda out, yb: crit(out, _smooth(yb, 0.1)), epochs=5, every=10)
    assert len(found) == 1 and found[0].status == "warn" and "= 0.1 applied twice" in found[0].value, found


@pytest.mark.parametrize("loss_of", [
    lambda out, yb: F.cross_entropy(out, yb, label_smoothing=0.1),
    lambda out, yb: F.cross_entropy(out, yb, label_smoothing=0.2),
    lambda out, yb: F.cross_entropy(out, _smooth(yb, 0.1)),  # smoothed once, by hand
    lambda out, yb: F.cross_entropy(out, yb),
], ids=["ls0.1", "ls0.2", "by_hand", "none"])
def test_one_smoothing_passes(loss_of):
    assert _run(loss_of) == []
