"""A loop that keeps its loss tensors (``losses.append(loss)`` for a plot) keeps each step's autograd graph: the
memory grows every step. Keeping ``loss.item()`` passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor


def _run(keep_tensor: bool):
    torch.manual_seed(0)
    x = torch.randn(640, 10)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    with doctor.watch(model, opt) as w:
        for _ in range(2):
            for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
                history.append(loss if keep_tensor else loss.item())
    return w.report().verdicts


@pytest.mark.slow  # 1 s
def test_loss_tensors_kept_in_a_list_are_named():
    kept = [v for v in _run(keep_tensor=True) if v.check == "loop: loss tensors kept"]
    assert len(kept) == 1 and kept[0].status == "warn"
    assert "38 of 38 earlier loss tensors" in kept[0].value  # 40 steps, the latest 2 not read


def test_floats_kept_pass():
    assert not [v for v in _run(keep_tensor=False) if v.check == "loop: loss tensors kept"]
