"""``trainwell watch`` on a hand-written GCN (Kipf & Welling 2017): full-batch training on a graph's labelled
nodes, the normalized adjacency a (N, N) buffer, so the forward runs on all N nodes only. No reshape of the user's
flattens the batch: a reshape of the watch's own hooks (reading the input) is not the model's, and the loop is not
named for batch independence; a forward that does flatten its batch axis still is, at the user's line."""

import gc
import textwrap

import pytest
import torch._dynamo  # noqa: F401  (imported before any watch, as in test_script_preflight.py)

from trainwell.doctor.script_watch import ScriptWatch

GCN = """
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
train_mask = torch.zeros(N, dtype=torch.bool)
train_mask[torch.randperm(N)[:30]] = True


class GCN(nn.Module):
    def __init__(self, adj):
        super().__init__()
        self.register_buffer("adj", adj)
        self.w1, self.w2 = nn.Linear(8, 16), nn.Linear(16, C)

    def forward(self, x):
        return self.adj @ self.w2(F.relu(self.adj @ self.w1(x)))


model = GCN(d[:, None] * A_hat * d[None, :])
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
for epoch in range(30):
    model.train()
    loss = F.cross_entropy(model(features)[train_mask], labels[train_mask])
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        val = F.cross_entropy(model(features)[~train_mask], labels[~train_mask]).item()
"""

FLATTENED = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(200, 4, 6)
y = (x.mean((1, 2)) > 0).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 6, 16 * 2)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)))).view(-1, 2)


model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(2):
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, drop_last=True):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _verdicts(tmp_path, text: str) -> dict:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(text))
    gc.collect()
    runner = ScriptWatch(every=5)
    [report] = runner.run(str(path), [])
    assert runner.error is None, runner.error
    return {v.check: v for v in report.verdicts}


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_full_batch_gcn_is_not_read_as_flattening_its_batch(tmp_path):
    found = _verdicts(tmp_path, GCN)
    independence = found.get("loop: batch independence")
    assert independence is None or independence.status == "pass", independence.value


@pytest.mark.slow  # ~2 s: a script's run
def test_a_forward_that_flattens_its_batch_is_still_named_at_the_user_s_line(tmp_path):
    independence = _verdicts(tmp_path, FLATTENED)["loop: batch independence"]
    assert independence.status == "fail" and "torch.flatten at train.py:" in independence.value, independence.value
