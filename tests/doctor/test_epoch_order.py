"""Every epoch drawing its batches in the same order: a DataLoader re-created each epoch with a generator seeded
the same way repeats the first epoch's permutation (torch's own loader is the oracle). doctor.watch names it from
the targets given to w.step(loss, y=y), with or without w.validate() marking the epochs; a loader built once, or
re-seeded with the epoch number, passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: batch order"


def _data(n=640, d=10, c=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return TensorDataset(x, (x @ torch.randn(d, c, generator=g)).argmax(1))


def _run(loader_for_epoch, epochs=4, validate=True):
    torch.manual_seed(0)
    ds = _data()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for epoch in range(epochs):
            for xb, yb in loader_for_epoch(ds, epoch):
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            if validate:
                w.validate(loss.item())
    return [v for v in w.report() if v.check == NAME]


def _same_seed(ds, epoch):
    return DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(42))


def test_the_oracle_a_loader_re_created_with_one_seed_repeats_its_order():
    first, second = ([yb for _, yb in _same_seed(_data(), e)] for e in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("validate", [True, False], ids=["validate_marks_epochs", "no_validate"])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_a_loader_re_seeded_alike_every_epoch_is_named(validate):
    found = _run(_same_seed, validate=validate)
    assert len(found) == 1 and found[0].status == "warn"
    assert "every epoch draws the batches in the same order" in found[0].value
    assert "every 10 steps" in found[0].value  # 640 examples / 64 per batch
    assert "keep one generator" in found[0].advice


def test_a_loader_built_once_passes():
    loader = DataLoader(_data(), batch_size=64, shuffle=True)
    assert _run(lambda ds, epoch: loader) == []


def test_a_loader_re_seeded_with_the_epoch_number_passes():
    assert _run(lambda ds, epoch: DataLoader(ds, batch_size=64, shuffle=True,
                                             generator=torch.Generator().manual_seed(epoch))) == []


def test_one_fixed_order_by_design_passes():
    loader = DataLoader(_data(), batch_size=64, shuffle=False)  # the data set was shuffled once, when it was made
    assert _run(lambda ds, epoch: loader) == []


def test_a_global_seed_reset_every_epoch_is_named():
    loader = DataLoader(_data(), batch_size=64, shuffle=True)

    def reseeded(ds, epoch):
        torch.manual_seed(0)  # at the top of every epoch
        return loader

    found = _run(reseeded)
    assert len(found) == 1 and found[0].status == "warn"
