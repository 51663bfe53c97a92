"""The doctor on validation losses whose count is not the one the loss averages over, or whose total holds a
training batch: a tagger's padded sequences summed over the real tokens (``ignore_index``) and divided by every
position, pads included, or by the sequences while the training loss is per token; a class-weighted
cross-entropy's weighted sums divided by the examples rather than by their class weights; and a validation total
started from the loss of the batch the last step trained on. Their healthy twins (the mean per token; a loss per
sequence in a loop that trains per sequence; class-weighted batch means averaged by their rows or by their weights;
the training batch's loss kept in its own variable) are not named."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.average_forms import matched

NAME = "loop: validation loss average"
V, T, PAD = 20, 12, 0


def _tags(n, g):
    """Token sequences of 3 to 12 tokens, padded with 0; each tag follows from its token."""
    x = torch.randint(1, V, (n, T), generator=g)
    y = (x + 3) % (V - 1) + 1
    pads = torch.arange(T)[None] >= torch.randint(3, T + 1, (n,), generator=g)[:, None]
    x[pads], y[pads] = PAD, PAD
    return TensorDataset(x, y)


class Tagger(nn.Module):
    """An embedding, a GRU and a tag per position."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 16, padding_idx=PAD)
        self.rnn, self.head = nn.GRU(16, 32, batch_first=True), nn.Linear(32, V)

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0])


def _tagger_run(over: str, train_per_sequence: bool = False):
    """Trains a tagger 3 epochs (its loss per token, or per sequence) and validates the summed token losses
    divided by ``over``: the non-pad tokens, every position, or the sequences."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train_ds, val_ds = _tags(256, g), _tags(100, g)
    train_loader, val_loader = DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=16)
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum" if train_per_sequence else "mean")
    summed = nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum")
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(3):
            model.train()
            for xb, yb in train_loader:
                loss = criterion(model(xb).view(-1, V), yb.view(-1))
                if train_per_sequence:
                    loss = loss / len(xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            total, n_tokens, n_positions = 0.0, 0, 0
            with torch.no_grad():
                for xb, yb in val_loader:
                    total += summed(model(xb).view(-1, V), yb.view(-1)).item()
                    n_tokens += int((yb != PAD).sum())
                    n_positions += yb.numel()
            w.validate(total / {"tokens": n_tokens, "positions": n_positions, "sequences": len(val_ds)}[over])
    return next((v for v in w.report().verdicts if v.check == NAME), None)


def _blobs():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 3, generator=g)
    x, xv = torch.randn(256, 10, generator=g), torch.randn(100, 10, generator=g)
    return TensorDataset(x, (x @ w).argmax(1)), TensorDataset(xv, (xv @ w).argmax(1))


class Net(nn.Module):
    """A small classifier with dropout."""

    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(10, 32), nn.Dropout(0.2), nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def _classifier_run(average: str, weight=None):
    """Trains 2 epochs with ``CrossEntropyLoss(weight=weight)`` and validates in batches of 20 averaged as
    ``average`` says."""
    torch.manual_seed(0)
    train_ds, val_ds = _blobs()
    train_loader, val_loader = DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=20)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.CrossEntropyLoss(weight=weight)
    summed = nn.CrossEntropyLoss(weight=weight, reduction="sum")
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(2):
            model.train()
            for xb, yb in train_loader:
                loss = criterion(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                if average == "rows":  # the batch means weighted by their rows
                    v = sum(criterion(model(xb), yb).item() * len(yb) for xb, yb in val_loader) / len(val_ds)
                elif average == "weights":  # the weighted sums over the summed weights: the loss's own mean
                    total_weight = float(weight[val_ds.tensors[1]].sum())
                    v = sum(summed(model(xb), yb).item() for xb, yb in val_loader) / total_weight
                elif average == "mean_of_means":
                    v = sum(criterion(model(xb), yb).item() for xb, yb in val_loader) / len(val_loader)
                elif average == "sums_over_examples":
                    v = sum(summed(model(xb), yb).item() for xb, yb in val_loader) / len(val_ds)
                elif average == "means_over_examples":
                    v = sum(criterion(model(xb), yb).item() for xb, yb in val_loader) / len(val_ds)
                else:  # "training_batch_first" / "training_batch_apart": the last training batch, in eval mode
                    train_eval = criterion(model(xb), yb).item()
                    v = train_eval if average == "training_batch_first" else 0.0
                    for xv, yv in val_loader:
                        v += criterion(model(xv), yv).item()
                    v /= len(val_loader)
            w.validate(v)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


WEIGHT = torch.tensor([1.0, 2.0, 4.0])


@pytest.fixture(scope="module")
def taggers():
    runs = {over: _tagger_run(over) for over in ("tokens", "positions", "sequences")}
    runs["sequences, trained per sequence"] = _tagger_run("sequences", train_per_sequence=True)
    return runs


@pytest.fixture(scope="module")
def classifiers():
    runs = {a: _classifier_run(a, WEIGHT) for a in ("rows", "weights", "mean_of_means", "sums_over_examples",
                                                     "means_over_examples")}
    runs.update({a: _classifier_run(a) for a in ("training_batch_first", "training_batch_apart")})
    return runs


@pytest.mark.slow
def test_token_sums_over_every_position_pads_included_fail(taggers):
    assert taggers["tokens"] is None
    v = taggers["positions"]
    assert v is not None and v.status == "fail" and "1200 target positions, padding included" in v.value, v
    assert "non-pad tokens" in v.advice and "share of padding" in v.advice


@pytest.mark.slow
def test_a_loss_per_sequence_fails_only_against_a_training_loss_per_token(taggers):
    v = taggers["sequences"]
    assert v is not None and v.status == "fail" and "a loss per sequence" in v.value, v
    assert "training loss is per token" in v.value and "total_tokens" in v.advice
    assert taggers["sequences, trained per sequence"] is None


@pytest.mark.slow
def test_class_weighted_means_averaged_by_rows_or_weights_pass(classifiers):
    for average in ("rows", "weights", "mean_of_means"):  # batches of 20: the mean of means is fine too
        assert classifiers[average] is None, (average, classifiers[average])


@pytest.mark.slow
def test_class_weighted_sums_over_the_examples_fail(classifiers):
    v = classifiers["sums_over_examples"]
    assert v is not None and v.status == "fail" and "class-weighted batch sums" in v.value, v
    assert "weight[y_val].sum()" in v.advice
    v = classifiers["means_over_examples"]
    assert v is not None and v.status == "fail" and "batch means summed and divided by the 100 examples" in v.value


@pytest.mark.slow
def test_a_training_batchs_loss_in_the_validation_total_fails(classifiers):
    v = classifiers["training_batch_first"]
    assert v is not None and v.status == "fail" and "includes a training batch's loss" in v.value, v
    assert "val_loss = 0.0" in v.advice
    assert classifiers["training_batch_apart"] is None


def test_forms_over_other_counts():
    from trainwell.doctor.average_forms import mixed

    # a padded tagger: (rows, reduction, value, units, sequences, targets counted) per batch of 16 sequences of 12
    calls = [(192, "sum", 240.0, 120, 16, 192), (192, "sum", 280.0, 140, 16, 192)]
    assert matched(520 / 384, calls) == ("sums", "targets")  # pads in the denominator
    assert matched(520 / 260, calls) == ("right", None)
    assert matched(520 / 32, calls) == (None, None)  # a loss per sequence: a unit of its own
    assert matched(520 / 32, calls, train=2.1) == ("sums", "sequences")  # ... but the training loss is per token
    assert matched(520 / 32, calls, train=15.0) == (None, None)  # ... the training loss per sequence too
    # class weights: units are the summed weights of the targets
    weighted = [(20, "sum", 30.0, 40.0, 20, 20, True), (20, "sum", 20.0, 30.0, 20, 20, True)]
    assert matched(50 / 70, weighted) == ("right", None)
    assert matched(50 / 40, weighted) == ("sums", "targets")
    # a training batch's loss (0.5) added into the sum of 3 validation batch means
    val = [(20, "mean", 0.8), (20, "mean", 0.9), (20, "mean", 1.0)]
    assert mixed((0.5 + 0.8 + 0.9 + 1.0) / 3, val, [(32, "mean", 0.5)])
    assert not mixed((0.8 + 0.9 + 1.0) / 3, val, [(32, "mean", 0.5)])
