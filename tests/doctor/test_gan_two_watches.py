"""A GAN watched with one doctor.watch per optimizer: the discriminator reads the generator's samples through
fake.detach() and the generator's loss goes through the discriminator, so the discriminator's loss is one
player's in a two-player game, not a supervised curve. A pipeline trained stage by stage (a head on an encoder's
detached features, each with its own optimizer and watch) is not a game."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

CURVE = "learning rate (loss curve)"


def _real(n, g):
    return torch.randn(n, 2, generator=g) * 0.3 + torch.tensor([2.0, -1.0])


def _gan_watches(stuck_generator):
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    disc = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    og = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(1)
    wg, wd = doctor.watch(gen, og, every=10), doctor.watch(disc, od, every=10)
    with wg, wd:
        for _ in range(200):
            fake = gen(torch.randn(64, 4, generator=g))
            od.zero_grad()
            d_real, d_fake = disc(_real(64, g)), disc(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            loss_d.backward()
            od.step()
            wd.step(loss_d)
            og.zero_grad()
            out = disc(fake.detach() if stuck_generator else fake)
            loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            loss_g.backward()
            og.step()
            wg.step(loss_g)
    return wg.report(), wd.report()


@pytest.mark.slow  # 0.3-1.2 s each
def test_the_discriminators_curve_is_read_as_one_player_of_a_game_when_the_generator_is_stuck():
    generator, discriminator = _gan_watches(stuck_generator=True)
    assert generator["loop: every trainable parameter learns"].status == "fail"
    curve = discriminator[CURVE]
    assert curve.status == "info" and "two-player game" in str(curve.value), curve
    assert "raise the learning rate" not in curve.advice


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_a_head_trained_on_an_encoders_detached_features_is_not_a_game():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
    head = nn.Linear(16, 1)
    decoder = nn.Linear(16, 8)  # the encoder learns as an autoencoder; the head regresses from its features
    oe = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    oh = torch.optim.SGD(head.parameters(), lr=1e-4)  # slow on purpose: its curve is read as a supervised one
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 8, generator=g)
    y = x[:, :1] * 2 + 1
    we, wh = doctor.watch(encoder, oe, every=10), doctor.watch(head, oh, every=10)
    with we, wh:
        for i in range(0, len(x), 32):
            h = encoder(x[i : i + 32])
            loss_e = F.mse_loss(decoder(h), x[i : i + 32])
            oe.zero_grad()
            loss_e.backward()
            oe.step()
            we.step(loss_e)
            loss_h = F.mse_loss(head(h.detach()), y[i : i + 32])
            oh.zero_grad()
            loss_h.backward()
            oh.step()
            wh.step(loss_h)
    curve = wh.report()[CURVE]
    assert "game" not in str(curve.value), curve
