"""A learning-rate scheduler created again inside the epoch loop, on the same optimizer, against one created once
(warm restarts by design, one scheduler per run of a sweep): user loops over a DataLoader."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

EPOCHS, BATCH = 4, 32


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(4, 8, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


_SCHEDULES = {  # a scheduler on opt for a run of `epochs` epochs of `batches` batches
    "one cycle per epoch": lambda opt, batches, epochs: lr_scheduler.OneCycleLR(opt, 0.1, total_steps=batches),
    "one cycle for the run": lambda opt, batches, epochs: lr_scheduler.OneCycleLR(opt, 0.1, epochs=epochs,
                                                                                  steps_per_epoch=batches),
    "cosine for the run": lambda opt, batches, epochs: lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * batches),
    "linear warm-up": lambda opt, batches, epochs: lr_scheduler.LinearLR(opt, 0.1, total_iters=batches // 2),
    "warm restarts each epoch": lambda opt, batches, epochs: lr_scheduler.CosineAnnealingWarmRestarts(opt,
                                                                                                    T_0=batches),
    "cyclic": lambda opt, batches, epochs: lr_scheduler.CyclicLR(opt, 1e-3, 0.1, step_size_up=batches // 2),
    "warm-up then cosine": lambda opt, batches, epochs: lr_scheduler.SequentialLR(opt, [
        lr_scheduler.LinearLR(opt, 0.1, total_iters=batches // 2),
        lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * batches - batches // 2)], milestones=[batches // 2]),
}


def _train(schedule, inside, validate=True, runs=1, epochs=EPOCHS):
    """``runs`` runs of ``epochs`` epochs over one DataLoader, the scheduler created inside the epoch loop
    (``inside``) or once per run before it; returns the watch's report."""
    torch.manual_seed(0)
    x, y = _blobs(512, 0)
    xv, yv = _blobs(128, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(runs):
            sched = None if inside else _SCHEDULES[schedule](opt, len(loader), epochs)
            for _ in range(epochs):
                if inside:
                    sched = _SCHEDULES[schedule](opt, len(loader), epochs)
                model.train()
                for xb, yb in loader:
                    loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    w.step(loss, y=yb)
                if validate:
                    model.eval()
                    with torch.no_grad():
                        w.validate(F.cross_entropy(model(xv), yv).item())
    return w.report()


@pytest.mark.parametrize("schedule", ["one cycle per epoch", "one cycle for the run", "cosine for the run",
                                      "linear warm-up", "warm-up then cosine"])
def test_a_scheduler_created_inside_the_epoch_loop_is_named(schedule):
    verdict = _train(schedule, inside=True)["loop: learning rate applied"]
    assert verdict.status == "warn", verdict
    assert f"created again {EPOCHS} times on the optimizer, at the start of each epoch (every 16 steps)" in \
        verdict.value, verdict
    assert "create it once before the epoch loop" in verdict.advice


@pytest.mark.parametrize("schedule", ["one cycle for the run", "cosine for the run", "linear warm-up",
                                      "warm restarts each epoch", "cyclic", "warm-up then cosine"])
def test_a_scheduler_created_once_passes(schedule):
    verdict = _train(schedule, inside=False)["loop: learning rate applied"]
    assert verdict.status == "pass", verdict


def test_the_epochs_are_read_from_the_loader_without_validations():
    verdict = _train("one cycle per epoch", inside=True, validate=False)["loop: learning rate applied"]
    assert verdict.status == "warn" and "at the start of each epoch" in verdict.value, verdict


def test_one_scheduler_per_run_of_a_sweep_passes():
    """Three runs of two epochs, one OneCycleLR per run sized for it: created again, but once per run."""
    verdict = _train("one cycle for the run", inside=False, runs=3, epochs=2)["loop: learning rate applied"]
    assert verdict.status == "pass", verdict


@pytest.mark.parametrize("schedule, status", [("one cycle for the run", "warn"), ("one cycle per epoch", "pass")])
def test_without_epochs_to_read_a_scheduler_replaced_before_its_end_is_named(schedule, status):
    """A loop over tensors without w.validate: no epoch to read. A OneCycleLR sized for the run but replaced
    every 16 steps never ends its cycle; one sized for the 16 steps it runs reads as a sweep's runs, each run to
    its end, and its next one's warm-up is no cosine climbing back past its end."""
    torch.manual_seed(0)
    x, y = _blobs(512, 0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(EPOCHS):
            sched = _SCHEDULES[schedule](opt, len(x) // BATCH, EPOCHS)
            for i in range(0, len(x), BATCH):
                loss = F.cross_entropy(model(x[i : i + BATCH]), y[i : i + BATCH])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                w.step(loss)
    verdict = w.report()["loop: learning rate applied"]
    assert verdict.status == status, verdict
    if status == "warn":
        assert "each replaced before its 64 steps ended" in verdict.value, verdict


def _lambda_per_epoch(continues):
    """A LambdaLR created at the start of each epoch of a loop over a DataLoader: a cosine over the run whose step
    count goes on from the epochs before (``continues``), or starts at 0 each time; returns the watch's report."""
    torch.manual_seed(0)
    x, y = _blobs(256, 0)
    xv, yv = _blobs(64, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    total = EPOCHS * len(loader)
    with doctor.watch(model, opt) as w:
        for epoch in range(EPOCHS):
            done = epoch * len(loader) if continues else 0
            sched = lr_scheduler.LambdaLR(opt, lambda s, done=done: 0.5 * (1 + math.cos(math.pi * (s + done) / total)))
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
    return w.report()["loop: learning rate applied"]


def test_a_rebuilt_scheduler_that_continues_the_schedule_passes():
    """The applied rates go on falling across the epochs, as one scheduler's would: no schedule starts over."""
    verdict = _lambda_per_epoch(continues=True)
    assert verdict.status == "pass", verdict


def test_a_rebuilt_scheduler_that_restarts_the_schedule_is_named():
    verdict = _lambda_per_epoch(continues=False)
    assert verdict.status == "warn" and "LambdaLR created again 4 times" in verdict.value, verdict


@pytest.mark.parametrize("continues, named", [(True, False), (False, True)])
def test_rebuilt_exponential_decay_is_read_from_the_rate_at_each_epoch_start(continues, named):
    """A per-step exponential decay repeats its course every epoch either way: only a rate back at its start
    tells a restart."""
    from trainwell.doctor.rebuilt_schedulers import starts_over

    rates = [0.1 * 0.9 ** ((e * 8 if continues else 0) + s) for e in range(4) for s in range(8)]
    assert starts_over(rates, [0, 8, 16, 24]) is named
