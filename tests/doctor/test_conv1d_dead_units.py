"""Dead ReLU units of a 1-D convolution's (N, C, L) map are channels: a temporal conv net's channel that fires at
some positions and not at others (causal padding, a signal that is flat over part of the window) is alive."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.dead_units import dead_units, unit_peaks


class CausalTCN(nn.Module):
    """The user's model: a causal Conv1d (left padding), F.relu, then the last step's channels to a linear head."""

    def __init__(self, c=8, dead_bias=0.0):
        super().__init__()
        self.conv = nn.Conv1d(1, c, 3)
        self.head = nn.Linear(c, 1)
        with torch.no_grad():  # each channel is positive only where the signal is, and only for a positive weight
            self.conv.weight.copy_(torch.ones(c, 1, 3))
            self.conv.bias.fill_(dead_bias)

    def forward(self, x):
        h = F.relu(self.conv(F.pad(x, (2, 0))))
        return self.head(h[:, :, -1])


def _signals(n=64, length=32):
    """Series that are 0 over their first 24 steps and positive after: 3/4 of each channel's positions are 0."""
    x = torch.zeros(n, 1, length)
    x[:, :, 24:] = torch.rand(n, 1, length - 24) + 0.1
    return x, x[:, :, -1:].sum(-1)


def test_a_conv1d_channel_that_fires_at_some_positions_is_alive():
    x, _ = _signals()
    h = F.relu(CausalTCN().conv(F.pad(x, (2, 0))))
    assert (unit_peaks(h) <= 0).float().mean() > 0.5  # read per (channel, position): 3/4 "dead"
    assert not (unit_peaks(h, channels=8) <= 0).any()  # per channel: every one fires
    assert dead_units(CausalTCN(), x).status == "pass"


@pytest.mark.slow
def test_the_watch_reads_a_conv1d_map_per_channel():
    torch.manual_seed(0)
    x, y = _signals(256)
    model = CausalTCN()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(12):
            xb, yb = x[i % 4 * 64:(i % 4 + 1) * 64], y[i % 4 * 64:(i % 4 + 1) * 64]
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    assert "monitor: dead ReLUs" not in w.report().checks


def test_a_conv1d_channel_dead_everywhere_is_still_dead():
    x, _ = _signals()
    v = dead_units(CausalTCN(dead_bias=-100.0), x)
    assert v.status == "fail" and "100% of the units of 'F.relu after conv'" in v.value
    model = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32, 1))
    with torch.no_grad():
        model[0].bias[:6] = -100.0
    v = dead_units(model, x)
    assert v.status == "warn" and v.value.startswith("75% of the units of '1' (ReLU after Conv1d(1 -> 8))")


def test_a_linear_layers_sequence_output_is_read_per_position_as_before():
    x = torch.zeros(16, 4, 3)
    x[:, 2:] = 1.0  # positions 0-1 are 0 for every example
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(-0.5)
    v = dead_units(nn.Sequential(lin, nn.ReLU()), x)
    assert v.value.startswith("50% of the units of '1' (ReLU after Linear(3 -> 2))")
