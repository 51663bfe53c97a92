"""``trainwell watch`` on a GAN whose script holds no doctor call: the discriminator's loss sums a call on the real
batch (targets all 1) and one on the fakes (all 0), and the generator's loss asks the discriminator for 1 on every
fake. Neither is a loss whose targets miss their negatives; a discriminator never shown the fakes is."""

import gc
import textwrap

import pytest
import torch._dynamo  # noqa: F401  (imported before any watch, as in test_script_preflight.py)

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import math
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ORDER = sys.argv[1]
torch.manual_seed(0)
k = torch.randint(0, 8, (768,)).float() * 2 * math.pi / 8
real_data = 2 * torch.stack([torch.cos(k), torch.sin(k)], 1) + 0.05 * torch.randn(768, 2)
G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
D = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
loader = DataLoader(TensorDataset(real_data), batch_size=64, shuffle=True)


def step_g(fake):
    d_gen = D(fake)
    loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()


def step_d(real, fake):
    d_real = D(real)
    loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    if ORDER != "real_only":
        d_fake = D(fake.detach())
        loss_d = loss_d + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()


for epoch in range(3):
    for (real,) in loader:
        fake = G(torch.randn(len(real), 4))
        if ORDER == "g_first":
            step_g(fake)
            step_d(real, fake)
        else:
            step_d(real, fake)
            step_g(fake)
"""


def _labels(tmp_path, order: str):
    path = tmp_path / "gan.py"
    path.write_text(textwrap.dedent(SCRIPT))
    gc.collect()
    runner = ScriptWatch(every=10)
    [report] = runner.run(str(path), [order])
    assert runner.error is None, runner.error
    return {v.check: v for v in report.verdicts}["loop: labels"]


@pytest.mark.parametrize("order", ["d_first", "g_first"])
def test_a_gan_s_constant_targets_per_loss_call_are_not_read_as_missing_negatives(tmp_path, order):
    labels = _labels(tmp_path, order)
    assert labels.status in ("pass", "skip"), labels.value


def test_a_discriminator_never_shown_the_fakes_is_still_named(tmp_path):
    labels = _labels(tmp_path, "real_only")
    assert labels.status == "warn" and "is 1" in labels.value, labels.value




@pytest.mark.slow  # ~2 s: a run with the pre-flight
def test_the_pre_flight_does_not_check_the_discriminator_on_the_generator_s_loss(tmp_path):
    """The generator stepped first: its loss reads the discriminator's output, but moves only the generator's
    parameters; the discriminator checked on (fakes, all 1) would be told its targets are constant."""
    path = tmp_path / "gan.py"
    path.write_text(textwrap.dedent(SCRIPT))
    gc.collect()
    runner = ScriptWatch(every=10, check=True)
    [report] = runner.run(str(path), ["g_first"])
    assert runner.error is None, runner.error
    pre = [v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"]
    assert pre[0].status == "skip" and "upstream of it" in pre[0].value, pre[0].value
    assert not [v for v in pre if v.status in ("warn", "fail")]
