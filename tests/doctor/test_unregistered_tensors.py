"""A positional encoding kept as a plain attribute (``self.pe = torch.randn(T, d, dtype=torch.float64)``) is not
moved or cast with the model and is left out of its state_dict; float64 here, it promotes the activations it is
added to. The doctor names it; the same table registered as a buffer in the weights' dtype, and a mask the forward
caches as a plain attribute on its input's device, are not named."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.unregistered_tensors import unregistered_verdict


class Positional(nn.Module):
    def __init__(self, registered: bool):
        super().__init__()
        self.inp, self.out = nn.Linear(8, 16), nn.Linear(16, 3)
        if registered:
            self.register_buffer("pe", torch.randn(16, 16))
        else:
            self.pe = torch.randn(16, 16, dtype=torch.float64)  # the bug: a plain attribute, float64

    def forward(self, x):
        return self.out(F.relu(self.inp(x) + self.pe).mean(1).float())


class CachedMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.out, self.mask = nn.Linear(8, 16), nn.Linear(16, 3), None

    def forward(self, x):
        if self.mask is None or len(self.mask) != x.shape[1]:
            self.mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
        h = self.inp(x)
        return self.out((self.mask.float() @ h).mean(1))


def _x():
    return torch.randn(32, 16, 8, generator=torch.Generator().manual_seed(0))


def test_a_plain_float64_table_is_named():
    torch.manual_seed(0)
    v = unregistered_verdict(Positional(False), _x())
    assert v is not None and v.status == "warn" and "'pe'" in v.value and "float64" in v.value, v
    assert "register_buffer('pe'" in v.advice


def test_a_buffer_and_a_cached_mask_are_not_named():
    torch.manual_seed(0)
    assert unregistered_verdict(Positional(True), _x()) is None
    model = CachedMask()
    model(_x())  # the mask now cached
    assert unregistered_verdict(model, _x()) is None
