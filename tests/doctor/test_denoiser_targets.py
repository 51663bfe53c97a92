"""The doctor on a diffusion denoiser whose target is its own noisy input ``x_t`` (it should be the noise added to
it): the model takes ``(x_t, t)``, so the targets equal one tensor among several inputs. Its output follows ``x_t``
in every direction (no code narrower than it): it learns to copy, named by check and by watch. The healthy twin
(target = the noise) and a conditional autoencoder (a bottleneck narrower than its input) are not warned."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

T = 100
ABAR = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), 0)


class Denoiser(nn.Module):
    """An MLP on the noisy vector and an embedding of its timestep."""

    def __init__(self):
        super().__init__()
        self.t_embed = nn.Embedding(T, 16)
        self.net = nn.Sequential(nn.Linear(8 + 16, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 8))

    def forward(self, xt, t):
        return self.net(torch.cat([xt, self.t_embed(t)], 1))


class ConditionalAutoencoder(nn.Module):
    """An autoencoder on 8-D vectors through a 2-D code, conditioned on a class label."""

    def __init__(self):
        super().__init__()
        self.enc, self.label = nn.Linear(8, 2), nn.Embedding(4, 2)
        self.dec = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 8))

    def forward(self, x, c):
        return self.dec(torch.cat([torch.tanh(self.enc(x)), self.label(c)], 1))


def noised(n, seed=0):
    """(x_t, t, eps): DDPM's forward process on 8-D vectors."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 8, generator=g) * 0.5 + torch.arange(8) / 8
    t = torch.randint(0, T, (n,), generator=g)
    eps = torch.randn(n, 8, generator=g)
    a = ABAR[t][:, None]
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, t, eps


def test_check_names_a_denoiser_trained_on_its_own_noisy_input():
    xt, t, eps = noised(256)
    torch.manual_seed(0)
    v = doctor.check(Denoiser(), (xt, t), xt, nn.MSELoss())["targets vs inputs"]
    assert v.status == "warn" and "follows that input in every direction" in v.value, v
    assert "noise" in v.advice


def test_check_says_nothing_of_a_denoiser_trained_on_the_noise():
    xt, t, eps = noised(256)
    torch.manual_seed(0)
    assert "targets vs inputs" not in doctor.check(Denoiser(), (xt, t), eps, nn.MSELoss()).checks


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_conditional_autoencoder_through_a_narrow_code_still_reads_as_an_autoencoder():
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(256, 8, generator=g), torch.randint(0, 4, (256,), generator=g)
    torch.manual_seed(0)
    v = doctor.check(ConditionalAutoencoder(), {"x": x, "c": c}, x, nn.MSELoss())["targets vs inputs"]
    assert v.status == "info" and "autoencoder" in v.value, v


def test_the_rank_reading_against_linear_maps_of_known_rank():
    """A linear map's output changes span exactly its rank: full for an invertible one, 3 for a product through
    a width-3 code."""
    from trainwell.doctor.echoed_targets import follows_every_direction

    g = torch.Generator().manual_seed(0)
    full, narrow = torch.randn(16, 16, generator=g), torch.randn(16, 3, generator=g) @ torch.randn(3, 16, generator=g)
    row = torch.randn(1, 16, generator=g)
    assert follows_every_direction(lambda rows: rows @ full, row) is True
    assert follows_every_direction(lambda rows: rows @ narrow, row) is False


def _loop(bug):
    torch.manual_seed(0)
    model = Denoiser()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(60):
            xt, t, eps = noised(64, seed=s)
            target = xt if bug else eps
            loss = F.mse_loss(model(xt, t), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=target)
    return w.report()


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_watch_names_a_denoiser_trained_on_its_own_noisy_input():
    v = _loop(bug=True)["loop: targets vs inputs"]
    assert v.status == "warn" and "follows that input in every direction" in v.value, v


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_watch_says_nothing_of_a_denoiser_trained_on_the_noise():
    assert "loop: targets vs inputs" not in _loop(bug=False).checks
