"""Regression benchmark: a population step stays well ahead of training the members one after another.

Measured as a ratio in one process, interleaved, median of several blocks, so that a loaded machine slows both
sides alike: the step a single ``fit`` runs (an ``nn.Module``, ``torch.optim.Adam``, cross-entropy, backward)
against a 16-member population step divided by 16, on the MNIST-1D MLP [100, 100] with batch 100. Each member
draws its own batches (the per-member path, the slower of the two). RESULTS section 24 measured ~5x here at one
thread; the bound is 3x.
"""

import statistics
import time

import pytest
import torch
from torch import nn

from trainwell.train.population import PopulationLearner

MEMBERS, BATCH, STEPS, BLOCKS = 16, 100, 30, 9


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def _block(step, steps: int) -> float:
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - tic) / steps


@pytest.mark.slow
def test_population_step_is_at_least_3x_faster_per_member_than_one_model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(4000, 40, generator=g), torch.randint(0, 10, (4000,), generator=g)
        model = _mlp()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        states = []
        for s in range(MEMBERS):
            torch.manual_seed(s)
            states.append(_mlp().state_dict())
        pop = PopulationLearner(model, states, optimizer="adam", lrs=[1e-3] * MEMBERS,
                                weight_decays=[0.0] * MEMBERS)
        loss_fn = nn.CrossEntropyLoss()

        def single():
            idx = torch.randint(0, len(x), (BATCH,), generator=g)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

        def population():
            pop.train_step(x, y, torch.randint(0, len(x), (MEMBERS, BATCH), generator=g))

        single_s, pop_s = [], []
        for _ in range(2):  # warm-up
            _block(single, 5), _block(population, 5)
        for _ in range(BLOCKS):
            single_s.append(_block(single, STEPS))
            pop_s.append(_block(population, STEPS) / MEMBERS)
        ratio = statistics.median(single_s) / statistics.median(pop_s)
        assert ratio >= 3.0, (f"population per-member step {1e3 * statistics.median(pop_s):.3f} ms vs one model's "
                              f"{1e3 * statistics.median(single_s):.3f} ms: {ratio:.2f}x (bound 3x)")
    finally:
        torch.set_num_threads(threads)
