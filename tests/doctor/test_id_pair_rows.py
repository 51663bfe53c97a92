"""A recommender called as ``model(users, items)`` meets each user in many examples, in both splits by design:
``loop: validation examples`` keys its examples by the (user, item) pairs, not by the user ids alone; validating
on training interactions is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: validation examples"


class MatrixFactorization(nn.Module):
    def __init__(self, users: int, items: int):
        super().__init__()
        self.user, self.item = nn.Embedding(users, 8), nn.Embedding(items, 8)

    def forward(self, u, i):
        return (self.user(u) * self.item(i)).sum(1)


def _run(validate_on_training: bool):
    torch.manual_seed(0)
    users, items, n = 200, 300, 4000
    u, i = torch.randint(0, users, (n,)), torch.randint(0, items, (n,))
    y = (torch.rand(n) < 0.5).float()
    tr, va = slice(0, 3200), slice(0, 800) if validate_on_training else slice(3200, None)
    model = MatrixFactorization(users, items)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=50) as w:
        for _epoch in range(2):
            for k in range(0, 3200, 320):
                ub, ib, yb = u[tr][k:k + 320], i[tr][k:k + 320], y[tr][k:k + 320]
                loss = F.binary_cross_entropy_with_logits(model(ub, ib), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            with torch.no_grad():
                w.validate(F.binary_cross_entropy_with_logits(model(u[va], i[va]), y[va]).item())
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {leak: _run(leak) for leak in (False, True)}


@pytest.mark.slow  # the fixture: two 20-step loops
def test_users_in_both_splits_are_no_shared_examples(reports):
    found = reports[False]
    assert found.get(NAME) is None or found[NAME].status == "pass"


@pytest.mark.slow
def test_validating_on_training_interactions_still_named(reports):
    assert reports[True][NAME].status in ("warn", "fail")
