"""A user's loop that feeds DataLoader batches (B, T, F) to a Transformer layer or nn.MultiheadAttention built with
the default batch_first=False: the layer attends across the batch's examples at each position. doctor.check names
it as batch independence; doctor.watch names it as `loop: batch independence`. A model built batch_first=True, one
that transposes to (T, B, F) itself, and a loop that feeds (T, B, F) with as many examples as positions pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: batch independence"
T, FEATURES, CLASSES = 6, 4, 3


def _sequences(n=96, length=T, seed=0):
    """(n, length, FEATURES) sequences; the label is which of the first 3 features has the largest mean."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, FEATURES, generator=g)
    return x, x[:, :, :CLASSES].mean(1).argmax(1)


class Encoder(nn.Module):
    """A Transformer encoder classifier, mean-pooled over positions. ``layout``: "bug" (batch_first=False, fed
    (B, T, F)), "batch_first" (built batch_first=True), "transposes" (batch_first=False, the forward transposes
    to (T, B, F) and back), "sequence_first" (batch_first=False, the loop feeds (T, B, F), pooled over dim 0)."""

    def __init__(self, layout: str):
        super().__init__()
        self.layout = layout
        self.embed = nn.Linear(FEATURES, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=layout == "batch_first")
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        h = self.embed(x)
        if self.layout == "transposes":
            h = self.encoder(h.transpose(0, 1)).transpose(0, 1)
        else:
            h = self.encoder(h)
        return self.head(h.mean(0 if self.layout == "sequence_first" else 1))


class Attention(nn.Module):
    """One nn.MultiheadAttention over the positions, built ``batch_first`` or not, fed (B, T, F)."""

    def __init__(self, batch_first: bool):
        super().__init__()
        self.embed = nn.Linear(FEATURES, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=batch_first)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        h = self.embed(x)
        a, _ = self.attn(h, h, h)
        return self.head(a.mean(1))


def _watch(model, x, y, batch_size=16, sequence_first=False):
    """A plain loop: a shuffled DataLoader, Adam, the targets given to w.step; ``sequence_first``: each batch
    transposed to (T, B, F) before the model."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with doctor.watch(model, opt, every=3) as w:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb.transpose(0, 1) if sequence_first else xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return w.report()


def _verdict(report):
    return next((v for v in report if v.check == NAME), None)


def _others_reach_example_0(model, xb, sequence_first=False):
    """The oracle: in eval mode, does example 0's output change when the other examples of its batch change?"""
    model.eval()
    with torch.no_grad():
        moved = xb.clone()
        moved[1:] = torch.randn_like(moved[1:])
        a, b = ((model(t.transpose(0, 1)) if sequence_first else model(t))[0] for t in (xb, moved))
    model.train()
    return not torch.allclose(a, b, atol=1e-6)


@pytest.mark.slow  # ~0.6 s: a watched loop or check run
@pytest.mark.parametrize("layout", ["bug", "batch_first", "transposes"])
def test_a_transformer_encoder_fed_batch_first_batches_is_named(layout):
    torch.manual_seed(0)
    x, y = _sequences()
    model = Encoder(layout)
    verdict = _verdict(_watch(model, x, y))
    assert _others_reach_example_0(model, x[:16]) == (layout == "bug")
    if layout == "bug":
        assert verdict is not None and verdict.status == "fail", verdict
        assert "TransformerEncoderLayer 'encoder.layers.0'" in verdict.value and "batch_first=False" in verdict.value
        assert "batch_first=True" in verdict.advice
    else:
        assert verdict is None, verdict


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_multihead_attention_fed_batch_first_batches_is_named(batch_first):
    torch.manual_seed(0)
    x, y = _sequences()
    model = Attention(batch_first)
    verdict = _verdict(_watch(model, x, y))
    assert _others_reach_example_0(model, x[:16]) != batch_first
    if batch_first:
        assert verdict is None, verdict
    else:
        assert verdict is not None and verdict.status == "fail" and "MultiheadAttention 'attn'" in verdict.value


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
@pytest.mark.parametrize("layout", ["bug", "sequence_first"])
def test_as_many_examples_as_positions(layout):
    """Batches of 6 sequences of 6 positions: (B, T, F) and (T, B, F) fit the 6 targets alike. A loop that
    transposes its batches for a sequence-first encoder passes; the encoder fed (B, T, F) is still named."""
    torch.manual_seed(0)
    x, y = _sequences(n=48)
    model = Encoder(layout)
    sequence_first = layout == "sequence_first"
    verdict = _verdict(_watch(model, x, y, batch_size=T, sequence_first=sequence_first))
    assert _others_reach_example_0(model, x[:T], sequence_first) == (layout == "bug")
    assert (verdict is not None and verdict.status == "fail") if layout == "bug" else verdict is None, verdict


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_sequence_first_batches_of_another_length_pass():
    """(T, B, F) batches with T != B: the targets locate the examples along dimension 1, as doctor.check reads
    them."""
    torch.manual_seed(0)
    x, y = _sequences()
    assert _verdict(_watch(Encoder("sequence_first"), x, y, sequence_first=True)) is None


class Tagger(nn.Module):
    """A sequence-first Transformer tagger: one class per position, (T, B, CLASSES) scores."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(FEATURES, 16)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0), 1,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)))


def test_a_sequence_first_tagger_given_its_targets_per_position_passes():
    """(T, B, F) batches and (T, B) targets, as the sequence-first layer wants them: the targets fit (B, T) as well,
    and the reading along dimension 1 keeps each example its own."""
    torch.manual_seed(0)
    x = torch.randn(96, T, FEATURES, generator=torch.Generator().manual_seed(0))
    tags = x[..., :CLASSES].argmax(-1)
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with doctor.watch(model, opt, every=3) as w:
        for i in range(0, len(x), 16):
            xb, yb = x[i : i + 16].transpose(0, 1), tags[i : i + 16].T
            loss = F.cross_entropy(model(xb).reshape(-1, CLASSES), yb.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    model.eval()
    with torch.no_grad():  # the oracle: example 0 (column 0) does not change with the others
        moved = xb.clone()
        moved[:, 1:] = torch.randn_like(moved[:, 1:])
        assert torch.allclose(model(xb)[:, 0], model(moved)[:, 0], atol=1e-6)
    assert _verdict(w.report()) is None


class RecurrentClassifier(nn.Module):
    """A sequence-first LSTM classifier (T, B, F) -> (B, CLASSES), from its last hidden state."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, 16)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


def _check_independence(model, x, y):
    return doctor.check(model, x, y, F.cross_entropy)["batch independence"]


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_check_passes_a_sequence_first_model_given_as_many_examples_as_positions(kind):
    """6 sequences of 6 positions fed (T, B, F), as the sequence-first layers want them: (B, T, F) fits the 6
    targets too, and the reading along dimension 1 keeps each example its own."""
    torch.manual_seed(0)
    x, y = _sequences(n=T)
    model = Encoder("sequence_first") if kind == "transformer" else RecurrentClassifier()
    assert not _others_reach_example_0(model, x, sequence_first=True)
    verdict = _check_independence(model, x.transpose(0, 1), y)
    assert verdict.status == "pass", verdict
    assert "(T, B, ...)" in verdict.value


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("layout", ["bug", "batch_first", "transposes"])
def test_check_reads_batch_first_models_given_as_many_examples_as_positions(layout):
    """(B, T, F) batches with B = T: the encoder built batch_first=False mixes the examples along both readings and
    is still named; built batch_first=True, or transposing to (T, B, F) itself, it passes."""
    torch.manual_seed(0)
    x, y = _sequences(n=T)
    model = Encoder(layout)
    bug = layout == "bug"
    assert _others_reach_example_0(model, x) == bug
    verdict = _check_independence(model, x, y)
    assert verdict.status == ("fail" if bug else "pass"), verdict
    if bug:
        assert "batch_first=True" in verdict.advice


class PositionedEncoder(nn.Module):
    """A sequence-first Transformer encoder classifier with a learned embedding for each of its T positions."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(FEATURES, 16)
        self.positions = nn.Parameter(0.1 * torch.randn(T, 1, 16))
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0), 1,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.positions).mean(0))


def test_check_reads_a_model_that_runs_only_on_whole_sequences_along_dimension_1():
    """(T, B, F) with T = B to a model whose positional embedding has all T positions: it runs on fewer sequences
    but not on fewer positions, and the reading along dimension 1 keeps each example its own."""
    torch.manual_seed(0)
    x, y = _sequences(n=T)
    model = PositionedEncoder()
    assert not _others_reach_example_0(model, x, sequence_first=True)
    verdict = _check_independence(model, x.transpose(0, 1), y)
    assert verdict.status == "pass", verdict
