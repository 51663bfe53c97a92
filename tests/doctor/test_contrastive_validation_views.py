"""A SimCLR-style model (Chen et al. 2020) validated on its own objective: NT-Xent over two freshly augmented views
of each validation image. The loss's targets are positions (``torch.arange`` pairing each view with its twin), and
the views must be drawn again at every evaluation: without augmentation the two views are identical and the loss
has nothing to measure. This is not the validation augmentation bug; a classifier whose validation images get new
noise at every evaluation still is."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: validation augmentation"


def _augment(x, g):
    return torch.roll(x, int(torch.randint(-1, 2, (), generator=g)), 2) + 0.1 * torch.randn(x.shape, generator=g)


def nt_xent(z1, z2, tau=0.2):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = (z @ z.t() / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


def _run(contrastive: bool):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(192, 1, 12, generator=g)
    y = (x[:, 0, :6].sum(1) > 0).long()
    xtr, ytr, xva, yva = x[:128], y[:128], x[128:], y[128:]
    enc = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(96, 16 if contrastive else 2))
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    with doctor.watch(enc, opt, every=10) as w:
        for _ in range(3):
            for i in torch.randperm(128).split(32):
                if contrastive:
                    loss = nt_xent(enc(_augment(xtr[i], g)), enc(_augment(xtr[i], g)))
                else:
                    loss = F.cross_entropy(enc(_augment(xtr[i], g)), ytr[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            with torch.no_grad():  # both validate on freshly drawn views of the same images
                if contrastive:
                    w.validate(nt_xent(enc(_augment(xva, g)), enc(_augment(xva, g))).item())
                else:
                    w.validate(F.cross_entropy(enc(_augment(xva, g)), yva).item())
    return w.report()


@pytest.mark.slow  # ~0.6 s for both
def test_contrastive_validation_on_fresh_views_is_not_named_but_an_augmented_classifier_validation_is():
    contrastive = _run(contrastive=True)
    assert NAME not in [v.check for v in contrastive.verdicts], contrastive
    classifier = _run(contrastive=False)
    assert classifier[NAME].status == "warn", classifier
