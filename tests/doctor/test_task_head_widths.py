"""``loop: labels`` on a multi-task model whose heads differ in width (one task per batch, ``model(x, task)``): the
labels are held to the widest head the observed steps scored, not to the first one's (a 2-class head read first
while the 10-class head's labels are up to 9); 1-based labels for the widest head are still named."""

import pytest
import torch
from torch import nn

from trainwell import doctor


class MultiTask(nn.Module):
    def __init__(self, widths: dict):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Linear(32, c) for k, c in widths.items()})

    def forward(self, x, task):
        return self.heads[task](self.trunk(x))


def _labels(one_based: bool):
    torch.manual_seed(0)
    x, y = torch.randn(256, 16), torch.randint(0, 10, (256,))
    # the 2-class task first; 1-based labels (class 0 never a target) given one output more in each head
    shift = int(one_based)
    model = MultiTask({"parity": 2 + shift, "digit": 10 + shift})
    targets = {"parity": lambda y: y % 2 + shift, "digit": lambda y: y + shift}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    with doctor.watch(model, opt, every=4) as w:
        for k, i in enumerate(torch.arange(256).split(16)):
            task = ("parity", "digit")[k % 2]
            t = targets[task](y[i])
            loss = loss_fn(model(x[i], task), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=t)
    return w.report()["loop: labels"]


@pytest.mark.slow  # ~0.6 s for both
def test_labels_are_held_to_the_widest_head_and_one_based_labels_are_still_named():
    healthy = _labels(one_based=False)
    assert healthy.status == "pass", healthy
    bug = _labels(one_based=True)
    assert bug.status in ("warn", "fail") and "1-based" in bug.advice, bug
