"""A Transformer classifier written after the Annotated Transformer: an ``Embeddings`` module returns
``self.lut(x) * math.sqrt(d_model)``, a sinusoidal ``PositionalEncoding`` is added to it. The buggy model multiplies
by sqrt(d_model) again in ``forward``: the tokens stand d times above the positions instead of sqrt(d). Its scale
alone cannot tell (torch's N(0, 1) init scaled once gives the std a Xavier init scaled twice gives), so the reading
follows the factors themselves; the same model scaling once, under either init, and a model with no scaling at all,
are not named."""

import math

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.embedding_factor import scaled_twice
from trainwell.doctor.structure_readings import structure_verdicts

D = 32


class Embeddings(nn.Module):
    def __init__(self, vocab: int, d_model: int):
        super().__init__()
        self.lut, self.d_model = nn.Embedding(vocab, d_model), d_model

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int = 64):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.size(1)])


class Classifier(nn.Module):
    """``scale``: 'twice' (the bug), 'once' (the Annotated Transformer), 'none' (a plain lookup)."""

    def __init__(self, scale: str, xavier: bool = True, vocab: int = 50):
        super().__init__()
        self.scale = scale
        self.embed = Embeddings(vocab, D) if scale != "none" else nn.Embedding(vocab, D)
        self.pos = PositionalEncoding(D)
        layer = nn.TransformerEncoderLayer(D, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(D, 2)
        if xavier:
            for p in self.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def forward(self, ids):
        h = self.embed(ids)
        if self.scale == "twice":
            h = h * math.sqrt(D)  # the bug: Embeddings has scaled already
        return self.head(self.encoder(self.pos(h)).mean(1))


def _data():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (64, 12), generator=g)
    return ids, ((ids == 7) | (ids == 8)).any(1).long()


@pytest.mark.parametrize(("scale", "xavier", "named"), [("twice", True, True), ("twice", False, True),
                                                       ("once", True, False), ("once", False, False),
                                                       ("none", False, False)])
def test_the_factors_are_read(scale, xavier, named):
    torch.manual_seed(0)
    ids, _ = _data()
    v = scaled_twice(Classifier(scale, xavier), ids)
    assert (v is not None) == named
    if named:
        assert v.status == "fail" and f"= {D} = d" in v.value and "positional encoding" in v.value
        assert "math.sqrt(d_model) once" in v.advice and "not both" in v.advice


def test_the_structure_readings_hold_it():
    torch.manual_seed(0)
    assert "embedding scale" in [v.check for v in structure_verdicts(Classifier("twice"), _data()[0])]


def test_d_written_for_sqrt_d_is_named():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = nn.Embedding(50, D), nn.Linear(D, 2)

        def forward(self, ids):
            return self.head((self.emb(ids) * D).mean(1))

    torch.manual_seed(0)
    v = scaled_twice(Scaled(), _data()[0])
    assert v is not None and "not both" not in v.advice


@pytest.mark.slow
def test_check_names_the_second_scaling():
    torch.manual_seed(0)
    ids, y = _data()
    report = doctor.check(Classifier("twice"), ids, y, nn.CrossEntropyLoss())
    assert report["embedding scale"].status == "fail"
