"""An imbalanced dataset oversampled twice: the dataset holds 4 copies of its examples (index ``i`` is example
``i % n``) and a WeightedRandomSampler has one weight per example, so it draws only the first copy. When each
item's noise comes from a generator seeded from the index (``torch.Generator().manual_seed(idx)``,
``np.random.default_rng(idx)``, ``random.Random(idx)``), every draw of an example is the same augmented row: the
sampler-weights fail names the index seed, not per-class weights. Noise from torch's global generator repeats the
weighted examples and passes; per-class weights are still named as such."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from trainwell import doctor

NAME = "loop: sampler weights"


class Oversampled(Dataset):
    """``copies`` passes over ``x``, each item with a little noise drawn as ``seeding`` says."""

    def __init__(self, x, y, copies, seeding):
        self.x, self.y, self.copies, self.seeding = x, y, copies, seeding
        self.rng = random.Random(7)  # the dataset's own generator, for a random sign flip

    def __len__(self):
        return len(self.x) * self.copies

    def __getitem__(self, idx):
        j = idx % len(self.x)
        d = self.x.shape[1]
        if self.seeding == "torch_index":
            noise = torch.randn(d, generator=torch.Generator().manual_seed(idx))
        elif self.seeding == "numpy_index":
            noise = torch.from_numpy(np.random.default_rng(idx).normal(size=d).astype(np.float32))
        elif self.seeding == "python_index":
            rng = random.Random(idx)
            noise = torch.tensor([rng.gauss(0.0, 1.0) for _ in range(d)])
        elif self.seeding == "torch_index_and_own":  # and a sign flip from the dataset's own generator
            noise = torch.randn(d, generator=torch.Generator().manual_seed(idx)) * self.rng.choice([-1.0, 1.0])
        else:  # torch's global generator
            noise = torch.randn(d)
        return self.x[j] + 0.1 * noise, self.y[j]


def _train(seeding: str, weights: str = "per_example"):
    torch.manual_seed(0)
    y = (torch.arange(96) % 4 == 0).long()  # one example in 4 of the rare class
    x = torch.randn(96, 6) + 2.0 * y[:, None].float()
    class_weights = 1.0 / torch.bincount(y).float()
    per = class_weights if weights == "per_class" else class_weights[y]
    data = Oversampled(x, y, 4, seeding)
    loader = DataLoader(data, batch_size=48, sampler=WeightedRandomSampler(per, num_samples=96))
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


@pytest.mark.parametrize("seeding", ["torch_index", "numpy_index", "python_index", "torch_index_and_own"])
@pytest.mark.slow  # 0.22 s each on a 2-core CPU (RESULTS §51)
def test_copies_augmented_from_an_index_seed_are_named_as_one_augmentation_per_example(seeding):
    verdict = _train(seeding)[NAME]
    assert verdict.status == "fail"
    assert "seeded from its index" in verdict.value and "96 weights" in verdict.value
    assert "manual_seed" in verdict.advice and "per class" not in verdict.advice
    # the read put torch's, numpy's and Python's constructors back: they seed as given
    assert torch.Generator is torch._C.Generator and random.Random.__module__ == "random"
    assert np.random.default_rng(3).integers(1000) == np.random.Generator(np.random.PCG64(3)).integers(1000)
    # the twin: the same copies augmented from torch's global generator repeat the weighted examples and pass
    assert NAME not in _train("global").checks


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_per_class_weights_over_index_seeded_copies_are_named_as_per_class():
    """The index seed is named only where the copies are the weighted examples: per-class weights are not."""
    per_class = _train("torch_index", weights="per_class")[NAME]
    assert per_class.status == "fail" and "2 weights" in per_class.value and "per class" in per_class.advice
    assert "seeded from its index" in _train("torch_index")[NAME].value


class Augmented(Dataset):
    """One pass over ``x`` (no copies), each item with noise drawn as ``seeding`` says; the loop sets ``epoch``."""

    def __init__(self, x, y, seeding):
        self.x, self.y, self.seeding, self.epoch = x, y, seeding, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        d = self.x.shape[1]
        if self.seeding == "torch_index":
            noise = torch.randn(d, generator=torch.Generator().manual_seed(idx))
        elif self.seeding == "numpy_index":
            noise = torch.from_numpy(np.random.default_rng(idx).normal(size=d).astype(np.float32))
        elif self.seeding == "python_index":
            rng = random.Random(idx)
            noise = torch.tensor([rng.gauss(0.0, 1.0) for _ in range(d)])
        elif self.seeding == "index_and_epoch":
            noise = torch.randn(d, generator=torch.Generator().manual_seed(idx * 1000 + self.epoch))
        elif self.seeding == "seed_from_torch":  # a seed drawn from torch's generator: new on every read
            noise = torch.randn(d, generator=torch.Generator().manual_seed(int(torch.randint(2**31, ()))))
        else:  # torch's global generator
            noise = torch.randn(d)
        return self.x[idx] + 0.1 * noise, self.y[idx]


def _oversample(seeding: str):
    torch.manual_seed(0)
    y = (torch.arange(96) % 8 == 0).long()  # one example in 8 of the rare class, drawn about 4x as often
    x = torch.randn(96, 6) + 2.0 * y[:, None].float()
    data = Augmented(x, y, seeding)
    sampler = WeightedRandomSampler((1.0 / torch.bincount(y).float())[y], num_samples=96, replacement=True)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=5) as w:
        for epoch in range(3):
            data.epoch = epoch
            for xb, yb in DataLoader(data, batch_size=48, sampler=sampler):
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("seeding", ["torch_index", "numpy_index", "python_index"])
def test_oversampled_examples_augmented_from_an_index_seed_are_named(seeding):
    """Every draw of a rare example, in every epoch, is the same augmented row; seeds that take the epoch, or that
    come from torch's generator, and noise from torch's generator pass."""
    verdict = _oversample(seeding)[NAME]
    assert verdict.status == "warn" and "from the index alone" in verdict.value
    assert "manual_seed" in verdict.advice and "the index and the epoch" in verdict.advice
    for twin in ("index_and_epoch", "seed_from_torch", "global"):
        assert NAME not in _oversample(twin).checks, twin


class Procedural(Dataset):
    """Each example generated from its index: the seed draws its class (one in 5 rare) and its features; no data
    is stored and nothing is augmented, so every draw of an index is rightly that one example."""

    def __init__(self, n):
        self.n = n
        self.centers = 2.0 * torch.randn(2, 6, generator=torch.Generator().manual_seed(99))

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        label = int(torch.rand((), generator=g) < 0.2)
        return self.centers[label] + torch.randn(6, generator=g), label


def test_examples_generated_from_their_index_under_a_weighted_sampler_are_not_named():
    torch.manual_seed(0)
    data = Procedural(96)
    labels = torch.tensor([data[i][1] for i in range(len(data))])
    assert 0 < int(labels.sum()) < 48 and torch.equal(data[7][0], data[7][0])  # the oracle: rare class, fixed examples
    sampler = WeightedRandomSampler((1.0 / torch.bincount(labels).float())[labels], num_samples=96)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(3):
            for xb, yb in DataLoader(data, batch_size=48, sampler=sampler):
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    assert NAME not in w.report().checks
