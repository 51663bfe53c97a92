"""The doctor on a batch-first Transformer classifier that kept the PyTorch tutorial's positional encoding, written for
(T, B, d) inputs: a buffer ``pe`` of shape (max_len, 1, d) added as ``x + pe[:x.size(0)]``. With (B, T, d) inputs
``x.size(0)`` is the batch: example b gets position b's vector at every token (reported in public repositories'
issues: GETNext #2, C.Origami #42). The examples do not mix, yet each output depends on its row in the batch:
``batch independence`` names it, and the module where it starts. The twin slices the positions, ``pe[:x.size(1)]``
as a (1, T, d) tensor, and passes; so does a model that samples in eval mode (each row's noise moves with the order)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor import preflight as pf

V, T, D = 20, 10, 16


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (Vaswani et al. 2017), as the tutorial builds them: pe of shape (max_len, 1, d)."""

    def __init__(self, d: int, batch_first_fix: bool, max_len: int = 200):
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2] = torch.sin(pos * div)
        pe[:, 0, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe)
        self.fixed = batch_first_fix

    def forward(self, x):  # x: (B, T, d)
        if self.fixed:
            return x + self.pe[: x.size(1)].transpose(0, 1)
        return x + self.pe[: x.size(0)]  # the bug: x.size(0) is the batch


class Classifier(nn.Module):
    def __init__(self, fixed: bool):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.pos = PositionalEncoding(D, fixed)
        layer = nn.TransformerEncoderLayer(D, 2, 32, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(D, 3)

    def forward(self, ids):
        return self.head(self.enc(self.pos(self.emb(ids) * math.sqrt(D))).mean(1))


class SamplingEncoder(nn.Module):
    """A variational encoder that samples in eval mode too: each row's noise depends on its row."""

    def __init__(self):
        super().__init__()
        self.mu, self.logvar = nn.Linear(6, 4), nn.Linear(6, 4)

    def forward(self, x):
        mu = self.mu(x)
        return mu + torch.randn_like(mu) * (0.5 * self.logvar(x)).exp()


def _ids():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, V, (32, T), generator=g)


def test_tutorial_positional_encoding_on_batch_first_inputs_is_named():
    torch.manual_seed(0)
    v = pf.batch_independence(Classifier(fixed=False), _ids())
    assert v.status == "fail", v
    assert "position in the batch" in v.value and "'pos'" in v.value, v
    assert "pe[:x.size(0)]" in v.advice


def test_positions_sliced_along_the_sequence_pass():
    torch.manual_seed(0)
    v = pf.batch_independence(Classifier(fixed=True), _ids())
    assert v.status == "pass", v


def test_a_model_sampling_in_eval_mode_is_not_read_as_position_dependent():
    torch.manual_seed(0)
    v = pf.batch_independence(SamplingEncoder(), torch.randn(16, 6))
    assert v.status == "pass", v


@pytest.mark.slow
def test_doctor_check_names_it_with_the_users_loss():
    torch.manual_seed(0)
    ids = _ids()
    report = doctor.check(Classifier(fixed=False), ids, ids[:, 0] % 3, F.cross_entropy)
    found = [v for v in report if v.check == "batch independence"]
    assert found and found[0].status == "fail" and "position in the batch" in found[0].value, report
