"""A tabular classifier (categorical embeddings beside numeric features) trained through a DataLoader with a
WeightedRandomSampler for its rare class. Given one weight per class instead of one per example, the sampler draws
only examples 0..C-1: watch names it; per-example weights pass, as does a plain shuffled loader."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from trainwell import doctor

NAME = "loop: sampler weights"


def _table(n=2048):
    g = torch.Generator().manual_seed(0)
    cat = torch.randint(0, 10, (n,), generator=g)
    num = torch.randn(n, 5, generator=g)
    y = (num[:, 0] + torch.linspace(-1, 1, 10)[cat] + 0.5 * torch.randn(n, generator=g) > 1.2).long()
    y[0], y[1] = 0, 1  # the first two examples hold both classes: their labels alone look healthy
    return cat, num, y


class Tabular(nn.Module):
    def __init__(self):
        super().__init__()
        self.category = nn.Embedding(10, 4)
        self.mlp = nn.Sequential(nn.Linear(4 + 5, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, cat, num):
        return self.mlp(torch.cat([self.category(cat), num], 1))


def _train(weights: str):
    torch.manual_seed(0)
    cat, num, y = _table()
    class_weights = 1.0 / torch.bincount(y).float()
    data = TensorDataset(cat, num, y)
    if weights == "none":
        loader = DataLoader(data, batch_size=64, shuffle=True)
    else:
        per = class_weights if weights == "per_class" else class_weights[y]
        loader = DataLoader(data, batch_size=64, sampler=WeightedRandomSampler(per, num_samples=len(y)))
    model = Tabular()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for c, x, t in loader:
                loss = F.cross_entropy(model(c, x), t)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=t)
    return w.report()


@pytest.mark.parametrize("weights", ["per_class", "per_example", "none"])
def test_a_weighted_sampler_given_one_weight_per_class_is_named(weights):
    report = _train(weights)
    if weights == "per_class":
        assert report[NAME].status == "fail" and "2 weights" in str(report[NAME].value)
        assert "class_weights[labels]" in report[NAME].advice
    else:
        assert NAME not in report.checks


class Oversampled(torch.utils.data.Dataset):
    """The table twice over: index ``i`` is example ``i % n``, so that a sampler over ``n`` weights reaches all."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return 2 * len(self.data)

    def __getitem__(self, i):
        return self.data[i % len(self.data)]


def _train_oversampled(weights: str):
    torch.manual_seed(0)
    cat, num, y = _table(1024)
    class_weights = 1.0 / torch.bincount(y).float()
    per = class_weights if weights == "per_class" else class_weights[y]
    data = Oversampled(TensorDataset(cat, num, y))
    loader = DataLoader(data, batch_size=64, sampler=WeightedRandomSampler(per, num_samples=len(data)))
    model = Tabular()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        for c, x, t in loader:
            loss = F.cross_entropy(model(c, x), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=t)
    return w.report()


@pytest.mark.parametrize("weights", ["per_class", "per_example"])
def test_a_dataset_that_repeats_the_weighted_examples_is_not_short_of_weights(weights):
    """Per-example weights over a dataset that repeats its examples past them reach every example: no verdict;
    per-class weights over the same dataset still draw only examples 0..1."""
    report = _train_oversampled(weights)
    if weights == "per_class":
        assert report[NAME].status == "fail" and "2 weights" in str(report[NAME].value)
    else:
        assert NAME not in report.checks


def test_reading_the_dataset_leaves_the_loops_draws_alone():
    """The indices read past the weights do not move torch's generator, even for a dataset that draws."""

    class Noisy(Oversampled):
        def __getitem__(self, i):
            return super().__getitem__(i) + torch.rand(()).round().long()

    from trainwell.doctor.sampler_weights import repeats_past

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    repeats_past(Noisy(torch.arange(8)), 8, 16)
    assert torch.equal(torch.rand(3), expected)
