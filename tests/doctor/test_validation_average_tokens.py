"""The doctor on a language model's validation loss, its scores flattened to (B*T, V) and its padding ignored
(``ignore_index``): the right denominator is the tokens the loss averages over, not the sequences. A token-weighted
average (batch means times their non-pad tokens, or ``reduction="sum"`` over all tokens, divided by the tokens)
and the mean of the batch means are not named; the batch means summed over the sequences, or the batch sums over
the batches, are."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.average_forms import matched, tokens, wrong_form

NAME = "loop: validation loss average"
V, T, PAD = 20, 12, 0


def _data(n, g, pad):
    """Sequences whose every second token follows from the one before; ``pad``: random lengths, padded with 0."""
    x = torch.randint(1, V, (n, T + 1), generator=g)
    x[:, 1::2] = (x[:, 0:-1:2] + 1) % (V - 1) + 1
    if pad:
        lengths = torch.randint(4, T + 1, (n,), generator=g)
        x[torch.arange(T + 1)[None] > lengths[:, None]] = PAD
    return TensorDataset(x[:, :-1], x[:, 1:])


class TinyLM(nn.Module):
    """An embedding, a GRU and a linear head over the vocabulary."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(V, 16), nn.GRU(16, 32, batch_first=True), nn.Linear(32, V)

    def forward(self, input_ids):
        return self.head(self.rnn(self.emb(input_ids))[0])


def _validate(model, loader, n_sequences, average, ignore, by_name=False):
    """The user's validation loss over the flattened tokens, averaged as ``average`` says; ``by_name``: the model
    called as ``model(input_ids=xb)``."""
    total, n_tokens, batches = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in loader:
            logits, y = (model(input_ids=xb) if by_name else model(xb)).view(-1, V), yb.view(-1)
            kept = int((y != ignore).sum())
            if average in ("sum_over_tokens", "sums_over_batches"):
                total += F.cross_entropy(logits, y, ignore_index=ignore, reduction="sum").item()
            elif average == "token_weighted":
                total += F.cross_entropy(logits, y, ignore_index=ignore).item() * kept
            else:  # the batch means
                total += F.cross_entropy(logits, y, ignore_index=ignore).item()
            n_tokens, batches = n_tokens + kept, batches + 1
    over = {"sum_over_tokens": n_tokens, "token_weighted": n_tokens, "means_over_sequences": n_sequences}
    return total / over.get(average, batches)


def _run(average, pad, by_name=False):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train_ds, val_ds = _data(192, g, pad), _data(100, g, pad)
    train_loader, val_loader = DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=16)
    model = TinyLM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ignore = PAD if pad else -100
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(3):
            model.train()
            for xb, yb in train_loader:
                loss = F.cross_entropy(model(xb).view(-1, V), yb.view(-1), ignore_index=ignore)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            w.validate(_validate(model, val_loader, len(val_ds), average, ignore, by_name))
    return next((v for v in w.report().verdicts if v.check == NAME), None)


AVERAGES = ("token_weighted", "sum_over_tokens", "mean_of_means", "means_over_sequences", "sums_over_batches")


@pytest.fixture(scope="module")
def verdicts():
    runs = {(a, pad): _run(a, pad) for a in AVERAGES for pad in (False, True)}
    runs[("means_over_sequences", "by_name")] = _run("means_over_sequences", True, by_name=True)
    return runs


@pytest.mark.slow
def test_token_weighted_averages_pass(verdicts):
    for average in ("token_weighted", "sum_over_tokens", "mean_of_means"):
        for pad in (False, True):
            assert verdicts[(average, pad)] is None, (average, pad)


@pytest.mark.slow
def test_batch_means_over_the_sequences_fail(verdicts):
    for pad in (False, True, "by_name"):  # by_name: model(input_ids=xb)
        v = verdicts[("means_over_sequences", pad)]
        assert v is not None and v.status == "fail", (pad, v)
        assert "divided by the 100 sequences (not the 7 batches)" in v.value and "per token" in v.value, v.value
        assert "per token" in v.expected and "ignore_index" in v.advice


@pytest.mark.slow
def test_batch_sums_over_the_batches_fail_counted_in_tokens(verdicts):
    v = verdicts[("sums_over_batches", True)]
    assert v is not None and v.status == "fail" and "divided by the 7 batches" in v.value, v
    tokens_kept = v.value.split("(not the ")[1].split(" tokens")[0]
    assert int(tokens_kept) < 100 * T  # the non-pad tokens, not every position
    assert verdicts[("sums_over_batches", False)].status == "fail"


def test_forms_of_a_flattened_sequence_loss():
    # 3 batches of 16, 16 and 4 sequences of 10 positions, some padded: (rows, reduction, mean, tokens, sequences)
    calls = [(160, "mean", 2.0, 120, 16), (160, "mean", 2.2, 140, 16), (40, "mean", 2.4, 30, 4)]
    n_tokens = 120 + 140 + 30
    weighted = (2.0 * 120 + 2.2 * 140 + 2.4 * 30) / n_tokens
    assert tokens(calls)
    assert wrong_form(weighted, calls) == "right"
    assert wrong_form((2.0 * 120 + 2.2 * 140 + 2.4 * 30) / 3, calls) == "sums"
    assert matched((2.0 + 2.2 + 2.4) / 36, calls) == ("means", "sequences")
    assert matched((2.0 + 2.2 + 2.4) / n_tokens, calls) == ("means", "units")
    assert wrong_form((2.0 * 120 + 2.2 * 140 + 2.4 * 30) / 36, calls) is None  # a loss per sequence: not named
    assert not tokens([(16, "mean", 0.5, 16, 16), (4, "mean", 0.7, 4, 4)])  # one row per example
