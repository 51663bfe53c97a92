"""``params = model.parameters()`` handed to the optimizer, then ``clip_grad_norm_(params, max_norm)``: the
generator is used up, the clipping call gets no tensor and clips nothing. The watch names it (``loop: clipping
reaches the parameters``); the same loop with ``params = list(model.parameters())`` passes."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: clipping reaches the parameters"


def _train(as_list: bool):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    loader = DataLoader(TensorDataset(x, (x @ w).argmax(1)), batch_size=32, shuffle=True, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    params = list(model.parameters()) if as_list else model.parameters()
    opt = torch.optim.SGD(params, lr=0.5)
    with warnings.catch_warnings(), doctor.watch(model, opt, every=5) as watch:
        warnings.simplefilter("ignore")  # torch's "`parameters` is an empty generator"
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.1)
            opt.step()
            watch.step(loss, y=yb)
    return watch.report().verdicts


@pytest.mark.parametrize("as_list", [False, True])
def test_a_used_up_generator_is_named(as_list):
    verdicts = _train(as_list)
    named = [v for v in verdicts if v.check == NAME]
    if as_list:
        assert not named
        assert not [v for v in verdicts if v.check.startswith("loop: clipping") and v.status in ("warn", "fail")]
    else:
        assert len(named) == 1 and named[0].status == "warn"
        assert "handed no tensor on all" in named[0].value
