"""A WGAN's generator watched with both optimizers runs ``G(z).detach()`` once per critic step, ``n_critic = 10``
critic steps per generator step: ten forwards no backward reaches before every generator step, each used by the
critic's optimizer step right after it. ``loop: every batch reaches backward`` counts the forwards between two
steps of another given optimizer, so the WGAN is not named (nor a generator watched with its own optimizer only);
a loop with two optimizers whose backward is dedented out of a 10-batch loop still is."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.dropped_batches import NAME


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, z):
        return self.net(z)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x)


def _wgan(both_optimizers: bool, n_critic: int = 10, steps: int = 4):
    """WGAN with weight clipping (Arjovsky et al. 2017): RMSprop, ``n_critic`` critic steps per generator step."""
    torch.manual_seed(0)
    data = torch.randn(2048, 2) * 0.5 + torch.tensor([2.0, -1.0])
    G, D = Generator(), Critic()
    opt_g, opt_d = torch.optim.RMSprop(G.parameters(), lr=5e-5), torch.optim.RMSprop(D.parameters(), lr=5e-5)
    with doctor.watch(G, [opt_g, opt_d] if both_optimizers else opt_g, every=5) as w:
        for _ in range(steps):
            for _ in range(n_critic):
                real = data[torch.randint(0, 2048, (64,))]
                fake = G(torch.randn(64, 4)).detach()
                d_loss = D(fake).mean() - D(real).mean()
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                for p in D.parameters():
                    p.data.clamp_(-0.01, 0.01)
            g_loss = -D(G(torch.randn(64, 4))).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            w.step(g_loss)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


def _two_optimizers(dedented: bool):
    """A classifier whose body and head have optimizers of their own; 10 batches per epoch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    opts = [torch.optim.SGD(model[0].parameters(), lr=0.1), torch.optim.Adam(model[2].parameters(), lr=1e-2)]
    with doctor.watch(model, opts, every=3) as w:
        for _ in range(4):
            for i in range(0, 320, 32):
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                if not dedented:
                    for o in opts:
                        o.zero_grad()
                    loss.backward()
                    for o in reversed(opts):  # the head's first: the order the loop writes them in
                        o.step()
                    w.step(loss)
            if dedented:
                for o in opts:
                    o.zero_grad()
                loss.backward()
                for o in reversed(opts):
                    o.step()
                w.step(loss)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.mark.slow
def test_a_wgan_with_ten_critic_steps_per_generator_step_is_not_named():
    assert _wgan(both_optimizers=True) is None
    assert _wgan(both_optimizers=False) is None  # the critic's optimizer not given: its steps are not seen


@pytest.mark.slow
def test_ten_batches_per_step_with_two_optimizers_are_still_named():
    v = _two_optimizers(dedented=True)
    assert v is not None and v.status == "fail" and "outside the batch loop" in v.advice, v
    assert _two_optimizers(dedented=False) is None
