"""A loop that seeds torch's random generator every step: every step draws the same random numbers, so dropout
drops the same units on every step (torch is the oracle). doctor.watch names it from the global random state, read
where each step's forward starts and at w.step; seeding once, once per epoch, with the step's own number, inside a
torch.random.fork_rng() block, or a model that draws nothing, passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainwell import doctor
from trainwell.doctor.reseeded_steps import READ_STEPS

NAME = "loop: random state reseeded"


def _data(n=256, d=10):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class _Net(nn.Module):
    def __init__(self, p=0.5, checkpointed=False):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(p))
        self.head = nn.Linear(32, 2)
        self.checkpointed = checkpointed

    def forward(self, x):
        h = checkpoint(self.body, x, use_reentrant=False) if self.checkpointed else self.body(x)
        return self.head(h)


def _run(seed_step=None, seed_epoch=None, *, data=None, model=None, epochs=2, eval_step=None, loader=None):
    """A user's loop: ``seed_step(epoch, i)`` runs at the top of every step, ``seed_epoch(epoch)`` of every epoch,
    ``eval_step(model)`` after the optimizer steps; returns the verdicts named NAME."""
    torch.manual_seed(0)
    model = model or _Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = loader or DataLoader(data or _data(), batch_size=32, shuffle=True)
    with doctor.watch(model, opt) as w:
        for epoch in range(epochs):
            if seed_epoch is not None:
                seed_epoch(epoch)
            for i, (x, y) in enumerate(loader):
                if seed_step is not None:
                    seed_step(epoch, i)
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if eval_step is not None:
                    eval_step(model)
                w.step(loss, y=y)
    return [v for v in w.report() if v.check == NAME]


def test_the_oracle_seeding_before_each_step_repeats_the_dropout_mask():
    drop, x = nn.Dropout(0.5), torch.ones(64, 32)
    masks = []
    for _ in range(2):
        torch.manual_seed(42)
        masks.append(drop(x) == 0)
    assert torch.equal(*masks) and masks[0].any()


@pytest.mark.parametrize("seed", [lambda e, i: torch.manual_seed(42), lambda e, i: torch.random.manual_seed(42),
                                  lambda e, i: torch.default_generator.manual_seed(42),
                                  lambda e, i: torch.manual_seed(e)],
                         ids=["torch.manual_seed", "torch.random.manual_seed", "default_generator", "epoch_number"])
def test_a_seed_every_step_is_named(seed):
    found = _run(seed)
    assert len(found) == 1 and found[0].status == "warn"
    assert found[0].value.startswith("every step draws the same random numbers")
    assert "seed once before the loop" in found[0].advice


class _SeededItems(Dataset):
    """A dataset that seeds torch's generator in __getitem__ (to make its augmentation reproducible)."""

    def __init__(self):
        self.data = _data(n=128)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        torch.manual_seed(42)
        x, y = self.data[i]
        return x + 0.1 * torch.randn_like(x), y


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_a_seed_in_the_datasets_getitem_is_named():
    found = _run(data=_SeededItems())
    assert len(found) == 1 and "the dataset's __getitem__" in found[0].advice


def test_a_seed_once_before_the_loop_passes():
    assert _run(seed_epoch=lambda e: torch.manual_seed(42) if e == 0 else None) == []


def test_a_seed_every_epoch_passes():
    assert _run(seed_epoch=lambda e: torch.manual_seed(42), epochs=3) == []


def test_a_new_seed_every_step_passes():
    assert _run(lambda e, i: torch.manual_seed(1000 * e + i)) == []


def test_a_model_that_draws_nothing_passes_though_seeded_every_step():
    assert _run(lambda e, i: torch.manual_seed(42), model=_Net(p=0.0)) == []


def test_a_reproducible_evaluation_inside_fork_rng_passes():
    probe = _data().tensors[0][:16]

    def evaluate(model):  # Monte Carlo dropout on a fixed seed, the training stream left as it was
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(0)
            model(probe)
    assert _run(eval_step=evaluate) == []


def test_deterministic_algorithms_and_a_checkpointed_dropout_pass():
    torch.use_deterministic_algorithms(True)
    try:  # checkpoint puts the random state back to recompute the same mask in backward
        assert _run(seed_epoch=lambda e: torch.manual_seed(42) if e == 0 else None,
                    model=_Net(checkpointed=True)) == []
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_a_worker_init_fn_seeding_the_workers_passes():
    def seed_worker(worker_id):
        torch.manual_seed(42 + worker_id)

    loader = DataLoader(_data(), batch_size=32, shuffle=True,
                        num_workers=2, worker_init_fn=seed_worker)
    assert _run(loader=loader) == []


def test_the_state_is_read_on_the_first_steps_only():
    torch.manual_seed(0)
    model, x, y = _Net(), torch.randn(8, 10), torch.randint(0, 2, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:
        for _ in range(READ_STEPS + 20):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
    assert len(w.probe.random_states.pairs) == READ_STEPS
