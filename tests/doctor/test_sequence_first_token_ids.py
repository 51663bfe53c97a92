"""A token-id model, ``nn.Embedding`` then an ``nn.LSTM``/``nn.GRU`` left at ``batch_first=False``, fed a
DataLoader's (B, T) ids: the layer reads the embedded (B, T, E) batch as (T, B, E) and recurs across the examples.
``doctor.check``'s batch-independence fail names the layer and its flag, read from the layer's own input on a
forward (the 2-D ids alone do not say where the sequence axis lies); so does the first batch's error of a
classifier whose ``h_n[-1]`` then holds one row per position. The same model built ``batch_first=True``, a
sequence-first model fed (T, B) ids on purpose, and one that transposes the embedded ids itself (its examples
mixed elsewhere: a mean over the batch in its head) are not named."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

VOCAB, T, B = 50, 12, 32


class TokenClassifier(nn.Module):
    """Written batch-first (``out[:, -1]``); ``batch_first`` is the recurrent layer's flag."""

    def __init__(self, batch_first: bool, kind=nn.LSTM):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.rnn = kind(16, 32, batch_first=batch_first)
        self.head = nn.Linear(32, 3)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.head(out[:, -1])


class SequenceFirstClassifier(nn.Module):
    """Sequence-first on purpose: ids (T, B), or (B, T) transposed after the embedding (``transpose``), with a
    head that subtracts the batch's mean (``centered``: mixes the examples)."""

    def __init__(self, transpose: bool = False, centered: bool = False):
        super().__init__()
        self.transpose, self.centered = transpose, centered
        self.emb = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, ids):
        e = self.emb(ids)
        out, _ = self.rnn(e.transpose(0, 1) if self.transpose else e)
        h = out[-1]
        return self.head(h - h.mean(0) if self.centered else h)


def _batch():
    """The first (B, T) batch of token ids from the user's DataLoader, labeled by their last token."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (256, T), generator=g)
    loader = DataLoader(TensorDataset(ids, ids[:, -1] % 3), batch_size=B, shuffle=True, generator=g)
    return next(iter(loader))


def _independence(model, x, y):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    report = doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=opt, examples=64)
    return next(v for v in report.verdicts if v.check == "batch independence")


@pytest.mark.slow  # ~0.8 s: a watched loop or check run
@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_a_recurrent_layer_left_sequence_first_behind_an_embedding_of_token_ids_is_named(kind):
    x, y = _batch()
    verdict = _independence(TokenClassifier(batch_first=False, kind=kind), x, y)
    assert verdict.status == "fail", verdict.value
    assert verdict.advice.startswith(f"{kind.__name__} 'rnn' is built with batch_first=False: it reads the "
                                     f"embedded token ids x ({B}, {T}) as (T, B, ...)"), verdict.advice
    assert "batch_first=True" in verdict.advice


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_the_same_layer_built_batch_first_passes_unnamed():
    x, y = _batch()
    verdict = _independence(TokenClassifier(batch_first=True), x, y)
    assert verdict.status == "pass", verdict.value
    assert "batch_first=False" not in str(verdict.advice)


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_token_ids_fed_sequence_first_on_purpose_are_not_named():
    x, y = _batch()
    verdict = _independence(SequenceFirstClassifier(), x.t().contiguous(), y)  # (T, B) ids, one label per sequence
    assert verdict.status == "pass", verdict.value
    assert "batch_first=False" not in str(verdict.advice)


def test_a_layer_given_the_embedded_ids_transposed_is_not_named_for_examples_mixed_elsewhere():
    x, y = _batch()
    verdict = _independence(SequenceFirstClassifier(transpose=True, centered=True), x, y)
    assert verdict.status == "fail", verdict.value  # the head's mean over the batch
    assert "batch_first=False" not in str(verdict.advice), verdict.advice


class LastStateClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.rnn = nn.GRU(16, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, ids):
        _, h = self.rnn(self.emb(ids))
        return self.head(h[-1])


def test_the_first_batch_error_of_a_last_state_classifier_names_the_layer():
    x, y = _batch()
    report = doctor.check(LastStateClassifier(), x, y, nn.CrossEntropyLoss(), examples=64)
    crash = next(v for v in report.verdicts if v.check == "forward and loss run")
    assert crash.status == "fail"
    assert f"the output holds {T} rows, one per position of the ({B}, {T}, ...) input, and the targets {B}: GRU " \
           "'rnn' is built with batch_first=False" in crash.advice, crash.advice
