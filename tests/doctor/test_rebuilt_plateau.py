"""A ReduceLROnPlateau created again at the start of every epoch restarts its patience count each time and never
lowers the rate; created once before the epoch loop, or once per run of a sweep, it passes."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

BATCH = 32


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(4, 8, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(where, runs=1, epochs=6):
    """``runs`` runs of ``epochs`` epochs, the plateau scheduler created inside the epoch loop (``where='epoch'``)
    or once per run before it; the scheduler is stepped on the validation loss after each epoch."""
    torch.manual_seed(0)
    x, y = _blobs(256, 0)
    xv, yv = _blobs(128, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt) as w:
        for _ in range(runs):
            sched = ReduceLROnPlateau(opt, factor=0.5, patience=1) if where == "run" else None
            for _ in range(epochs):
                if where == "epoch":
                    sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
                model.train()
                for xb, yb in loader:
                    loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss, y=yb)
                model.eval()
                with torch.no_grad():
                    val_loss = F.cross_entropy(model(xv), yv).item()
                w.validate(val_loss)
                sched.step(val_loss)
    return w.report()["loop: learning rate applied"]


def test_a_plateau_scheduler_created_every_epoch_is_named():
    verdict = _train("epoch")
    assert verdict.status == "warn", verdict
    assert "ReduceLROnPlateau created again 6 times on the optimizer, at the start of each epoch (every 8 steps)" \
        in verdict.value, verdict
    assert "its patience restarts each time, so the rate is never lowered (0.1 throughout)" in verdict.value
    assert "create it once before the epoch loop" in verdict.advice


def test_a_plateau_scheduler_created_once_passes():
    assert _train("run").status == "pass"


def test_one_plateau_scheduler_per_run_of_a_sweep_passes():
    assert _train("run", runs=3, epochs=3).status == "pass"
