"""``trainwell watch`` on a hand-written GCN (Kipf & Welling 2017) whose validation is a forward over the same
whole graph the training forward takes, its loss over the validation nodes (``out[val_mask]``): the watch hands
the script's own validation loss to ``w.validate()`` at every epoch, so its validation readings (overfitting) are
read. A loss over the training nodes recomputed in eval mode beside it stays the training loss, not the
validation's."""

import gc
import textwrap

import pytest
import torch._dynamo  # noqa: F401  (imported before any watch, as in test_script_preflight.py)

from trainwell.doctor.script_watch import ScriptWatch

GCN = """
import sys

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
N, C = 120, 3
labels = torch.arange(N) % C
p = torch.where(labels[:, None] == labels[None, :], torch.tensor(0.15), torch.tensor(0.02))
upper = torch.triu((torch.rand(N, N) < p).float(), diagonal=1)
A_hat = upper + upper.T + torch.eye(N)
d = A_hat.sum(1).pow(-0.5)
features = torch.randn(C, 8)[labels] * 0.6 + torch.randn(N, 8)
order = torch.randperm(N)
train_mask = torch.zeros(N, dtype=torch.bool)
train_mask[order[:30]] = True
val_mask = torch.zeros(N, dtype=torch.bool)
val_mask[order[30:90]] = True
RECOMPUTED = sys.argv[1:] == ["recomputed"]
VALS, TRAIN_EVALS = [], []


class GCN(nn.Module):
    def __init__(self, adj):
        super().__init__()
        self.register_buffer("adj", adj)
        self.w1, self.w2 = nn.Linear(8, 16), nn.Linear(16, C)

    def forward(self, x):
        return self.adj @ self.w2(F.relu(self.adj @ self.w1(x)))


model = GCN(d[:, None] * A_hat * d[None, :])
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
for epoch in range(20):
    model.train()
    loss = F.cross_entropy(model(features)[train_mask], labels[train_mask])
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        out = model(features)
        if RECOMPUTED:
            TRAIN_EVALS.append(F.cross_entropy(out[train_mask], labels[train_mask]).item())
        VALS.append(F.cross_entropy(out[val_mask], labels[val_mask]).item())
"""


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
@pytest.mark.parametrize("mode", ["plain", "recomputed"])
def test_a_gcn_s_validation_nodes_are_read_as_its_validation(tmp_path, mode):
    path = tmp_path / "gcn.py"
    path.write_text(textwrap.dedent(GCN))
    gc.collect()
    runner = ScriptWatch(every=5)
    [report] = runner.run(str(path), [mode])
    assert runner.error is None, runner.error
    vals = [v for _, v, _ in runner.watches[0]._val]
    script = runner._globals["VALS"]
    # the first validation too: the first training forward ran before the command's watch began, and what it
    # showed (its input, the training nodes its loss reached) is handed to the watch
    assert len(vals) == len(script) and vals == pytest.approx(script, rel=1e-5)
    assert "nan" not in report["overfitting"].value
