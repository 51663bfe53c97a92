"""A tabular classifier (categorical embeddings beside numeric features) trained through a DataLoader with a
WeightedRandomSampler for its rare class. Given one weight per class instead of one per example, the sampler draws
only examples 0..C-1: watch names it; per-example weights pass, as does a plain shuffled loader."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from trainwell import doctor

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

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
@pytest.mark.slow  # 0.27 s each on a 2-core CPU (RESULTS §51)
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
@pytest.mark.slow  # 0.20 s each on a 2-core CPU (RESULTS §51)
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


class AugmentedImages(torch.utils.data.Dataset):
    """Small two-class images, each example twice over (index ``i`` is image ``i % n``), augmented as they are
    read: a random horizontal flip and pixel noise, drawn from torch's, Python's or numpy's global generator."""

    def __init__(self, images, labels, draws_from):
        self.images, self.labels, self.draws_from = images, labels, draws_from

    def __len__(self):
        return 2 * len(self.labels)

    def __getitem__(self, i):
        i = i % len(self.labels)
        image = self.images[i]
        if self.draws_from == "torch":
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
            image = image + 0.1 * torch.randn_like(image)
        elif self.draws_from == "python":
            if random.random() < 0.5:
                image = image.flip(-1)
            image = image + random.gauss(0.0, 0.1)
        else:
            if np.random.rand() < 0.5:
                image = image.flip(-1)
            image = image + torch.from_numpy(np.random.normal(0.0, 0.1, image.shape).astype(np.float32))
        return image, self.labels[i]


def _augmented_loop(weights: str, draws_from: str, watched: bool = True):
    """A small image classifier trained on a rare-class dataset through a weighted sampler; returns the report
    (None unwatched) and the draws of torch's, Python's and numpy's generators after the loop."""
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    labels = (torch.arange(256) % 8 == 0).long()  # one image in 8 of the rare class
    images = torch.randn(256, 1, 8, 8) + 2.0 * labels.view(-1, 1, 1, 1).float()
    class_weights = 1.0 / torch.bincount(labels).float()
    per = class_weights if weights == "per_class" else class_weights[labels]
    data = AugmentedImages(images, labels, draws_from)
    loader = DataLoader(data, batch_size=32, sampler=WeightedRandomSampler(per, num_samples=len(data)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def train(w=None):
        for x, t in loader:
            loss = F.cross_entropy(model(x), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if w is not None:
                w.step(loss, y=t)

    if not watched:
        train()
        return None, _draws()
    with doctor.watch(model, opt, every=5) as w:
        train(w)
    return w.report(), _draws()


def _draws():
    return torch.rand(4).tolist(), random.random(), np.random.rand(2).tolist()


@pytest.mark.parametrize("draws_from", ["torch", "python", "numpy"])
@pytest.mark.parametrize("weights", ["per_class", "per_example"])
def test_an_augmenting_dataset_that_repeats_the_weighted_examples_is_not_short_of_weights(weights, draws_from):
    """Examples augmented at random as they are read are still the same examples past the weights: per-example
    weights pass; per-class weights over the same dataset still draw only examples 0..1."""
    report, _ = _augmented_loop(weights, draws_from)
    if weights == "per_class":
        assert report[NAME].status == "fail" and "2 weights" in str(report[NAME].value)
    else:
        assert NAME not in report.checks


@pytest.mark.parametrize("draws_from", ["torch", "python", "numpy"])
def test_reading_an_augmenting_dataset_leaves_the_loops_draws_alone(draws_from):
    """The loop draws the same numbers watched as unwatched: the reads of the dataset restore the generators."""
    _, unwatched = _augmented_loop("per_example", draws_from, watched=False)
    report, watched = _augmented_loop("per_example", draws_from)
    assert NAME not in report.checks
    assert watched == unwatched
