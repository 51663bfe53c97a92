"""The doctor on a graph network trained full-batch on its labelled nodes and validated on the other nodes of the
same graph (transductive node classification, Kipf & Welling 2017): the validation forward reads the same node
features as every training step, so its rows are the training rows, yet its loss reads other nodes. The watch's
``loop: validation examples`` must not call that a validation set made of training examples; a full-batch loop
whose loss reads every row and whose validation forward is that same batch is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: validation examples"
N, C = 160, 3


class MeanAggregation(nn.Module):
    """GraphSAGE-style layer pair: each node's features beside its neighbours' mean (``A @ x``)."""

    def __init__(self, adjacency):
        super().__init__()
        self.register_buffer("A", adjacency)
        self.l1, self.l2 = nn.Linear(2 * 8, 16), nn.Linear(2 * 16, C)

    def forward(self, x):
        h = F.relu(self.l1(torch.cat([x, self.A @ x], 1)))
        return self.l2(torch.cat([h, self.A @ h], 1))


def _graph():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, C, (N,), generator=g)
    p = torch.where(labels[:, None] == labels[None, :], 0.08, 0.01)
    a = (torch.rand(N, N, generator=g) < p).float()
    a = ((a + a.t()) > 0).float()
    a.fill_diagonal_(0)
    x = torch.randn(C, 8, generator=g)[labels] * 0.5 + torch.randn(N, 8, generator=g)
    train = torch.zeros(N, dtype=torch.bool)
    train[torch.randperm(N, generator=g)[:40]] = True
    return x, labels, a / a.sum(1, keepdim=True).clamp(min=1), train


def _verdict(masked=True):
    torch.manual_seed(0)
    x, labels, adjacency, train = _graph()
    if not masked:  # every node is a training example, and the same batch is then the validation set
        train = torch.ones(N, dtype=torch.bool)
    val = ~train if masked else train
    model = MeanAggregation(adjacency)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with doctor.watch(model, opt, every=5) as w:
        for epoch in range(20):
            loss = F.cross_entropy(model(x)[train], labels[train])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=labels[train])
            if epoch % 10 == 9:
                with torch.no_grad():
                    w.validate(F.cross_entropy(model(x)[val], labels[val]).item())
    return next(v for v in w.report() if v.check == NAME)


@pytest.mark.slow
def test_graph_network_validated_on_its_other_nodes_passes():
    v = _verdict(masked=True)
    assert v.status == "pass", v
    assert "labelled rows" in v.value


@pytest.mark.slow
def test_full_batch_loop_validated_on_its_training_batch_is_still_named():
    v = _verdict(masked=False)
    assert v.status == "fail", v
