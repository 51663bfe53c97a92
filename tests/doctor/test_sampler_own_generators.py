"""A dataset that repeats its weighted examples past the sampler's weights, augmenting each read from a generator
it keeps as its own attribute (a ``torch.Generator``, ``random.Random`` or numpy ``Generator`` made in
``__init__``): the global seeds do not reach it, yet the repeats are the same examples. Per-example weights pass
and the dataset's own generator is left as it was; per-class weights still draw only examples 0..C-1."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from trainwell import doctor

NAME = "loop: sampler weights"


class RepeatedWithOwnNoise(Dataset):
    """``copies`` passes over ``x``, each read with noise from the dataset's own generator."""

    def __init__(self, x, y, copies, kind):
        self.x, self.y, self.copies, self.kind = x, y, copies, kind
        self.rng = {"torch": torch.Generator().manual_seed(7), "python": random.Random(7),
                    "numpy": np.random.default_rng(7)}[kind]

    def __len__(self):
        return len(self.x) * self.copies

    def __getitem__(self, i):
        j = i % len(self.x)
        if self.kind == "torch":
            noise = torch.randn(self.x.shape[1], generator=self.rng)
        elif self.kind == "python":
            noise = torch.tensor([self.rng.gauss(0.0, 1.0) for _ in range(self.x.shape[1])])
        else:
            noise = torch.from_numpy(self.rng.normal(size=self.x.shape[1]).astype(np.float32))
        return self.x[j] + 0.1 * noise, self.y[j]


def _loop(weights: str, kind: str):
    torch.manual_seed(0)
    y = (torch.arange(128) % 4 == 0).long()  # one example in 4 of the rare class
    x = torch.randn(128, 6) + 2.0 * y[:, None].float()
    class_weights = 1.0 / torch.bincount(y).float()
    per = class_weights if weights == "per_class" else class_weights[y]
    data = RepeatedWithOwnNoise(x, y, 4, kind)
    loader = DataLoader(data, batch_size=32, sampler=WeightedRandomSampler(per, num_samples=len(data)))
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=5) as w:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return w.report(), data


@pytest.mark.parametrize("kind", ["torch", "python", "numpy"])
def test_a_dataset_augmenting_from_its_own_generator_repeats_its_weighted_examples(kind):
    report, _ = _loop("per_example", kind)
    assert NAME not in report.checks


def test_per_class_weights_over_it_are_still_named():
    report, _ = _loop("per_class", "torch")
    assert report[NAME].status == "fail" and "2 weights" in report[NAME].value


def test_reading_the_dataset_leaves_its_own_generator_where_it_was():
    """The dataset's generator after the loop's reads equals one replayed without the watch's reads."""
    _, data = _loop("per_example", "torch")
    replay = RepeatedWithOwnNoise(data.x, data.y, 4, "torch")
    for i in range(len(data)):  # one epoch reads len(data) items, each drawing once
        replay[i]
    assert torch.equal(replay.rng.get_state(), data.rng.get_state())
