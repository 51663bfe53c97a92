"""A multi-task model (a dict of heads) whose labels come as a dict with the same keys: each task's class labels
are read against its own head's width. One task's labels numbered 1..C on a head sized C + 1 to fit them (class 0
never appears) is named by its key; the twin's 0-based labels on a head of C are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell import doctor

NAME = "loop: labels"


class Shapes(Dataset):
    def __init__(self, n, one_based):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 12, generator=g)
        self.colour, self.shape = self.x[:, :3].argmax(1), self.x[:, 3:7].argmax(1) + int(one_based)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {"colour": self.colour[i], "shape": self.shape[i]}


class Net(nn.Module):
    def __init__(self, shapes):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(12, 32), nn.ReLU())
        self.heads = nn.ModuleDict({"colour": nn.Linear(32, 3), "shape": nn.Linear(32, shapes)})

    def forward(self, x):
        h = self.trunk(x)
        return {k: head(h) for k, head in self.heads.items()}


def _run(one_based: bool):
    torch.manual_seed(0)
    model = Net(5 if one_based else 4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        for x, y in DataLoader(Shapes(384, one_based), batch_size=32, shuffle=True):
            opt.zero_grad()
            out = model(x)
            loss = sum(F.cross_entropy(out[k], y[k]) for k in out)
            loss.backward()
            opt.step()
            w.step(loss, y=y)
    return w.report()[NAME]


@pytest.fixture(scope="module")
def verdicts():
    return _run(True), _run(False)


@pytest.mark.slow
def test_one_task_s_one_based_labels_are_named_by_its_key(verdicts):
    bug = verdicts[0]
    assert bug.status == "warn" and "task ['shape']" in bug.value and "class 0 never appears" in bug.value
    assert "['colour']" not in bug.value


@pytest.mark.slow
def test_each_task_s_zero_based_labels_pass(verdicts):
    assert verdicts[1].status == "pass" and "within their heads" in verdicts[1].value
