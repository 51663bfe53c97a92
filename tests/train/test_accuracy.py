"""The accuracy a run records is read the way the targets are written: one logit under binary cross-entropy,
per-position class labels, ignored labels, soft targets; none (NaN) for a regression. The oracle: the accuracy
computed by hand on the trained model."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.train import Trainer
from trainwell.train.accuracy import accuracy_kind, counts


def _fit(model, loss_fn, data, epochs=5):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    return Trainer(model, opt, loss_fn, epochs=epochs, batch_size=32).fit(data, data).history[-1]


@pytest.mark.parametrize("squeeze", [False, True])
def test_one_logit_under_bce_is_scored_by_its_sign(squeeze):
    torch.manual_seed(0)
    x = torch.randn(200, 5)
    y = (x[:, 0] > 0).float()
    body = nn.Linear(5, 1)
    model = nn.Sequential(body, nn.Flatten(0)) if squeeze else body
    target = y if squeeze else y[:, None]
    row = _fit(model, nn.BCEWithLogitsLoss(), (x, target))
    with torch.no_grad():
        truth = float(((body(x)[:, 0] > 0).float() == y).float().mean())
    assert row["val_acc"] == pytest.approx(truth) and 0.5 < truth <= 1.0


def test_per_position_labels_and_ignored_labels_are_scored_where_they_are_labelled():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 7)
    y = (x[:, 0] > 0).long()
    y[:, -1] = -100  # the last position of every sequence is padding
    model = nn.Conv1d(3, 2, 1)
    row = _fit(model, nn.CrossEntropyLoss(), (x, y))
    with torch.no_grad():
        truth = float((model(x).argmax(1) == y)[:, :-1].float().mean())
    assert row["val_acc"] == pytest.approx(truth)


def test_soft_targets_are_scored_by_their_largest_class_and_a_regression_records_no_accuracy():
    torch.manual_seed(0)
    x = torch.randn(200, 6)
    labels = x[:, :3].argmax(1)
    soft = F.one_hot(labels, 3).float() * 0.9 + 0.1 / 3
    model = nn.Linear(6, 3)
    row = _fit(model, nn.CrossEntropyLoss(), (x, soft))
    with torch.no_grad():
        assert row["val_acc"] == pytest.approx(float((model(x).argmax(1) == labels).float().mean()))
    regression = _fit(nn.Linear(6, 1), nn.MSELoss(), (x, x[:, :1]))
    assert math.isnan(regression["val_acc"]) and math.isnan(regression["train_acc"])


def test_a_sequence_models_scores_on_the_last_axis_are_scored_per_token():
    scores = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]])  # (1, T=3, C=2)
    y = torch.tensor([[0, 0, 0]])
    kind = accuracy_kind(scores, y, lambda o, t: F.cross_entropy(o.reshape(-1, 2), t.reshape(-1)))
    assert kind == ("classes_last", 0.0)
    right, labelled = counts(kind, scores, y)
    assert (int(right), int(labelled)) == (2, 3)
    square = torch.zeros(2, 4, 4)  # (N, T, T): either axis could hold the classes
    assert accuracy_kind(square, torch.zeros(2, 4, dtype=torch.long), lambda o, t: o.sum()) is None
    assert accuracy_kind(square, torch.zeros(2, 4, dtype=torch.long), nn.CrossEntropyLoss()) == ("classes_masked", 0.0)


def test_one_label_per_example_with_ignored_labels_counts_only_the_labelled():
    scores = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, -100, 1])
    kind = accuracy_kind(scores, y, nn.CrossEntropyLoss())
    assert kind == ("classes", 0.0)
    right, labelled = counts(kind, scores, y)
    assert (int(right), int(labelled)) == (2, 3)


def test_the_epochs_accuracy_is_right_answers_over_labelled_ones_whatever_the_batches_hold():
    """Ignored labels first met after the first batch, batches with more or fewer of them, and an accuracy read
    again when a later fit trains on another target form: the oracle is the accuracy over the labelled examples."""
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    y = x[:, :3].argmax(1)
    y[64:][torch.rand(192) < 0.7] = -100  # the first batches clean, most later labels ignored
    model = nn.Linear(6, 3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=64)
    row = trainer.fit((x, y), (x, y)).history[-1]
    with torch.no_grad():
        keep = y >= 0
        truth = float((model(x).argmax(1) == y)[keep].float().mean())
    assert row["val_acc"] == pytest.approx(truth) and trainer.validate(x, y)["val_acc"] == pytest.approx(truth)
    soft = torch.nn.functional.one_hot(x[:, :3].argmax(1), 3).float()
    row = trainer.fit((x, soft), (x, soft)).history[-1]  # the same trainer on soft targets
    with torch.no_grad():
        assert row["val_acc"] == pytest.approx(float((model(x).argmax(1) == soft.argmax(1)).float().mean()))


@pytest.mark.parametrize("ignored", [False, True])
@pytest.mark.parametrize("positions", [False, True])
def test_the_training_accuracy_counts_labelled_examples_or_positions_with_or_without_ignored_labels(ignored, positions):
    """At learning rate 0 the model does not change during the epoch, so the training accuracy is the fixed model's
    accuracy over the labelled examples (or positions): the counting the trainer skips when no label is negative
    must give what counting them does."""
    torch.manual_seed(0)
    x = torch.randn(200, 3, 5) if positions else torch.randn(200, 6)
    y = (x[:, 0] > 0).long() if positions else x[:, :3].argmax(1)
    if ignored:
        y[torch.rand(y.shape) < 0.3] = -100
    model = nn.Conv1d(3, 2, 1) if positions else nn.Linear(6, 3)
    row = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), epochs=1, batch_size=32).fit((x, y)).history[-1]
    with torch.no_grad():
        keep = y >= 0
        truth = float((model(x).argmax(1) == y)[keep].float().mean())
    assert row["train_acc"] == pytest.approx(truth)
    right, labelled = counts(("classes", 0.0), model(x).detach(), y, all_labelled=not ignored)
    assert (int(right), int(labelled)) == (int(((model(x).argmax(1) == y) & keep).sum()), int(keep.sum()))


@pytest.mark.parametrize("limit", [1, 2000, 1 << 20])
def test_held_counts_equal_each_batchs_counts_summed_whatever_is_held(limit):
    """The oracle: counts() of each batch on its own, summed. Batches of several kinds, shapes and dtypes follow
    one another (a DataLoader's uneven last batch, another sequence length, ignored labels), so they are held,
    concatenated where they can be and counted in groups."""
    from trainwell.train.accuracy import HeldCounts

    g = torch.Generator().manual_seed(0)

    def batch(n, *shape, kind=("classes", 0.0), dtype=torch.float32, ignored=False):
        scores = torch.randn(n, 5, *shape, generator=g).to(dtype)
        y = torch.randint(0, 5, (n, *shape), generator=g)
        if ignored:
            y[:, ...].view(-1)[::3] = -100
        return kind, scores, y

    batches = [batch(32), batch(32), batch(7), batch(32, dtype=torch.bfloat16), batch(32),
               batch(16, 9, kind=("classes_masked", 0.0), ignored=True), batch(16, 4, kind=("classes_masked", 0.0)),
               batch(16, 4, kind=("classes_masked", 0.0), ignored=True)]
    binary = torch.randn(20, generator=g), (torch.rand(20, generator=g) > 0.5).float()
    held = HeldCounts(limit=limit)
    right, labelled = 0, 0
    for i, (kind, scores, y) in enumerate(batches):
        all_labelled = i < 3  # the first three as train_step knows them (no negative label in the training set)
        held.add(kind, scores, y, all_labelled)
        r, c = counts(kind, scores, y, all_labelled)
        right, labelled = right + int(r), labelled + int(c)
    held.add(("binary", 0.0), *binary)
    r, c = counts(("binary", 0.0), *binary)
    right, labelled = right + int(r), labelled + int(c)
    got_right, got_labelled = held.totals()
    assert (int(got_right), int(got_labelled)) == (right, labelled)
    assert held.totals() == (got_right, got_labelled)  # counted once: asking again adds nothing
    held.reset()
    assert held.totals() == (0, 0)


def test_held_counts_count_a_batch_at_once_when_its_storage_is_past_the_limit():
    """A view of a large output (the last position of a sequence model's scores) holds the whole output's
    memory: it is counted when added, not held."""
    from trainwell.train.accuracy import HeldCounts

    full = torch.randn(8, 100, 10)
    scores, y = full[:, -1], torch.randint(0, 10, (8,))
    held = HeldCounts(limit=full.numel() * 4)
    held.add(("classes", 0.0), scores, y, True)
    assert held._held == [] and int(held.right) == int((scores.argmax(1) == y).sum())


def test_a_loader_that_refills_one_pair_of_tensors_gets_the_training_accuracy_of_every_batch():
    """A user's fast loader copies each batch into the same two tensors and yields them: the accuracy, counted
    after the epoch on a CPU, must still be every batch's (at learning rate 0: the fixed model's)."""
    torch.manual_seed(0)
    x, y = torch.randn(96, 6), torch.randint(0, 3, (96,))

    class Refilling:
        def __init__(self):
            self.xb, self.yb = torch.empty(32, 6), torch.empty(32, dtype=torch.long)

        def __len__(self):
            return 3

        def __iter__(self):
            for i in range(0, 96, 32):
                self.xb.copy_(x[i:i + 32])
                self.yb.copy_(y[i:i + 32])
                yield self.xb, self.yb

    model = nn.Linear(6, 3)
    row = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), epochs=1).fit(Refilling()).history[-1]
    with torch.no_grad():
        assert row["train_acc"] == pytest.approx(float((model(x).argmax(1) == y).float().mean()))
