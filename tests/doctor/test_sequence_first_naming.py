"""A recurrent model built with ``nn.LSTM``'s default ``batch_first=False`` and fed a DataLoader's (B, T, F)
batch recurs across the examples at each position. ``doctor.check`` names the layer and its flag: in the
batch-independence fail of a tagger, and in the first batch's error of a classifier whose ``h_n[-1]`` then holds
one row per position. A (T, B, F) batch given as the layer reads it, with one label per sequence, passes also
when T == B; the same layer built ``batch_first=True`` and fed (B, T, F) passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class Tagger(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.rnn = nn.LSTM(8, 32, batch_first=batch_first)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


class Classifier(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.rnn = nn.LSTM(8, 32, batch_first=batch_first)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        _, (h, _) = self.rnn(x)
        return self.out(h[-1])


def tag_loss(out, y):
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _sequences(first: int, second: int):
    return torch.randn(first, second, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reports():
    torch.manual_seed(0)
    out = {}
    x = _sequences(64, 20)  # (B, T, F)
    tags = (x[..., 0].cumsum(1) > 0).long() + (x[..., 1] > 0).long()
    out["tagger bug"] = doctor.check(Tagger(False), x, tags, tag_loss)
    out["tagger"] = doctor.check(Tagger(True), x, tags, tag_loss)
    x = _sequences(64, 16)
    out["classifier bug"] = doctor.check(Classifier(False), x, (x[:, :, 0].sum(1) > 0).long(), nn.CrossEntropyLoss())
    x = _sequences(16, 16)  # (T, B, F) with T == B, as the layer reads it
    out["square classifier"] = doctor.check(Classifier(False), x, (x[:, :, 0].sum(0) > 0).long(),
                                            nn.CrossEntropyLoss())
    return out


@pytest.mark.slow  # 4 checks, 1.4 s on a 2-core CPU
def test_a_tagger_fed_batch_first_to_a_sequence_first_lstm_names_the_layer(reports):
    independence = reports["tagger bug"]["batch independence"]
    assert independence.status == "fail"
    assert "LSTM 'rnn' is built with batch_first=False" in independence.advice
    assert "batch_first=True" in independence.advice and "(T * B, ...)" in independence.advice
    assert reports["tagger"].failed == []


@pytest.mark.slow
def test_a_classifier_whose_final_state_holds_one_row_per_position_names_the_layer(reports):
    crash = reports["classifier bug"]["forward and loss run"]
    assert crash.status == "fail"
    assert "LSTM 'rnn' is built with batch_first=False" in crash.advice and "h_n[-1]" in crash.advice


@pytest.mark.slow
def test_a_square_sequence_first_batch_with_one_label_per_sequence_is_not_misread(reports):
    report = reports["square classifier"]
    assert report["batch independence"].status == "pass"
    assert report.failed == []
