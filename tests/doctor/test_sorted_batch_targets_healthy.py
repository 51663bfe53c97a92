"""``doctor.check`` on a batch longer than the examples it reads, sorted by target: a GAN discriminator's real
samples (label 1) then the generator's fakes (label 0). Its first examples would all be real, and the ``targets``
check would call the batch one target; the check reads a random sample of the batch instead. A batch whose targets
are all one value is still named."""

import pytest
import torch
from torch import nn

from trainwell import doctor


def _discriminator_batch(fakes=True):
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 2, generator=g) * 0.1 + 1.0
    fake = torch.randn(300, 2, generator=g)
    x = torch.cat([real, fake])
    y = torch.cat([torch.ones(300), torch.zeros(300) if fakes else torch.ones(300)])
    return x, y


def _targets_verdict(fakes):
    torch.manual_seed(0)
    x, y = _discriminator_batch(fakes)
    discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0))
    report = doctor.check(discriminator, x, y, nn.BCEWithLogitsLoss())
    return [v for v in report if v.check == "targets" and v.status in ("warn", "fail")]


@pytest.mark.slow
def test_real_then_fake_batch_is_read_with_both_targets():
    assert _targets_verdict(fakes=True) == []


@pytest.mark.slow
def test_batch_of_one_target_is_still_named():
    named = _targets_verdict(fakes=False)
    assert len(named) == 1 and "all 256 targets are 1" in named[0].value, named
