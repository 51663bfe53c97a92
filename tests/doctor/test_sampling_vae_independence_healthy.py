"""The doctor on a conditional VAE whose forward samples its latent in eval mode too (``mu + randn_like(mu) * std``,
Kingma & Welling 2014; Sohn et al. 2015) and takes an integer class label beside its inputs. ``batch independence``
compares sample i's output with the other samples' labels replaced: each forward must draw the same noise, or fresh
noise reads as the batch mixing. A CVAE that centres its hidden units over the batch is still named."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import preflight as pf
from trainwell.doctor.inputs import Inputs

C, D, Z = 4, 12, 3


class CVAE(nn.Module):
    """Encoder on (x, one-hot c), a reparameterized latent, decoder on (z, one-hot c); returns the decoder's logits,
    mu and log-variance."""

    def __init__(self, centre_over_batch=False):
        super().__init__()
        self.centre = centre_over_batch
        self.enc = nn.Sequential(nn.Linear(D + C, 16), nn.ReLU())
        self.mu, self.logvar = nn.Linear(16, Z), nn.Linear(16, Z)
        self.dec = nn.Linear(Z + C, D)

    def forward(self, x, c):
        onehot = F.one_hot(c, C).float()
        h = self.enc(torch.cat([x, onehot], 1))
        if self.centre:  # the bug: a reduction over the batch axis
            h = h - h.mean(0, keepdim=True)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.dec(torch.cat([z, onehot], 1)), mu, logvar


def _verdict(centre):
    torch.manual_seed(0)
    c = torch.randint(0, C, (64,))
    x = (torch.rand(C, D) < 0.4).float()[c]
    model = CVAE(centre)
    return pf.batch_independence(model, Inputs((x, c)))


def test_cvae_sampling_in_eval_mode_is_batch_independent():
    v = _verdict(centre=False)
    assert v.status == "pass", v


def test_cvae_centring_over_the_batch_still_fails():
    v = _verdict(centre=True)
    assert v.status == "fail", v

