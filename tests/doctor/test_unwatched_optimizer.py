"""A user's click-through model with sparse embeddings (``nn.Embedding(sparse=True)``) stepped by ``SparseAdam`` and
its dense layers by ``Adam``, watched with the dense optimizer only: the embeddings get gradients no watched
optimizer holds, but they change between steps, so another optimizer steps them. The ownership verdict said they
"never change" (a fail); it now warns that their optimizer was not given to the watch. Embeddings that no optimizer
steps at all still fail."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class CTR(nn.Module):
    def __init__(self):
        super().__init__()
        self.user = nn.Embedding(50, 8, sparse=True)
        self.item = nn.Embedding(60, 8, sparse=True)
        self.mlp = nn.Sequential(nn.Linear(17, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, u, i):
        eu, ei = self.user(u), self.item(i)
        return self.mlp(torch.cat([eu, ei, (eu * ei).sum(1, keepdim=True)], 1)).squeeze(1)


def _ownership(step_embeddings: bool) -> doctor.Verdict:
    torch.manual_seed(0)
    u, i = torch.randint(0, 50, (2048,)), torch.randint(0, 60, (2048,))
    y = ((torch.randn(50, 2)[u] * torch.randn(60, 2)[i]).sum(1) > 0).float()
    model = CTR()
    opt_sparse = torch.optim.SparseAdam([model.user.weight, model.item.weight], lr=1e-2)
    opt_dense = torch.optim.Adam(model.mlp.parameters(), lr=1e-3)
    with doctor.watch(model, opt_dense, every=10) as w:
        for start in range(0, 2048, 64):
            loss = F.binary_cross_entropy_with_logits(model(u[start:start + 64], i[start:start + 64]),
                                                      y[start:start + 64])
            opt_sparse.zero_grad()
            opt_dense.zero_grad()
            loss.backward()
            if step_embeddings:
                opt_sparse.step()
            opt_dense.step()
            w.step(loss)
    return w.report()["loop: optimizer holds the parameters"]


def test_embeddings_stepped_by_an_optimizer_not_given_to_the_watch_warn_not_fail():
    verdict = _ownership(step_embeddings=True)
    assert verdict.status == "warn", verdict
    assert "not given to doctor.watch" in verdict.value and "user.weight" in verdict.value


def test_embeddings_no_optimizer_steps_still_fail():
    verdict = _ownership(step_embeddings=False)
    assert verdict.status == "fail" and "never change" in verdict.value, verdict
