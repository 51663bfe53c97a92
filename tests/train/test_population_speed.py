"""Regression benchmark: a population step stays well ahead of training the members one after another.

Measured as a ratio of CPU times (1 thread) in one process, interleaved, median of several blocks, so that a
loaded machine slows both sides alike: the per-member time of a 16-member population step (MNIST-1D MLP
[100, 100], batch 100, each member drawing its own batches: the slower of the population's two paths) against the
step a separate ``fit`` of one member runs (an ``nn.Module`` with ``torch.optim.Adam``): the population must stay
at least 3x faster per member than sequential fits. A 1-member population on the same learner path is timed
alongside and printed: the written-out backward made it faster too (RESULTS sections 24, 39, 40).
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
    tic = time.process_time()  # this process's CPU time: a core taken by another process does not count
    for _ in range(steps):
        step()
    return (time.process_time() - tic) / steps


@pytest.mark.slow
def test_population_step_is_at_least_3x_faster_per_member_than_a_separate_fits_step():
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

        one = PopulationLearner(model, states[:1], optimizer="adam", lrs=[1e-3], weight_decays=[0.0])

        def population_of_one():
            one.train_step(x, y, torch.randint(0, len(x), (1, BATCH), generator=g))

        single_s, one_s, pop_s = [], [], []
        for _ in range(2):  # warm-up
            _block(single, 5), _block(population_of_one, 5), _block(population, 5)
        for _ in range(BLOCKS):
            single_s.append(_block(single, STEPS))
            one_s.append(_block(population_of_one, STEPS))
            pop_s.append(_block(population, STEPS) / MEMBERS)
        pop_t, one_t, single_t = (statistics.median(v) for v in (pop_s, one_s, single_s))
        ratio = single_t / pop_t
        print(f"per member-step: population of {MEMBERS} {1e3 * pop_t:.3f} ms, one nn.Module {1e3 * single_t:.3f} ms "
              f"({ratio:.2f}x), population of 1 {1e3 * one_t:.3f} ms ({one_t / pop_t:.2f}x)")
        assert ratio >= 3.0, f"a population of {MEMBERS} is {ratio:.2f}x faster per member than a fit's step (bound 3x)"
    finally:
        torch.set_num_threads(threads)
