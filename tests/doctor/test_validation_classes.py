"""A data set sorted by class and split without shuffling (the last 20% as validation, as Keras' validation_split
takes it): the validation holds classes the training never had, and its loss climbs. The watch names the split
(not overfitting); a split after shuffling is not named."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.validation_classes import MOST, NAME, SOME, TrainingClasses, class_counts, unseen_classes


def _digits(sorted_split: bool):
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    order = torch.argsort(y, stable=True)  # a data file written class by class
    x, y = x[order], y[order]
    if not sorted_split:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        x, y = x[perm], y[perm]
    n = int(0.8 * len(x))
    return x[:n], y[:n], x[n:], y[n:]


def _watched(sorted_split: bool, epochs: int = 3, give_labels: bool = True):
    torch.manual_seed(0)
    xt, yt, xv, yv = _digits(sorted_split)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(xt, yt), batch_size=128, shuffle=True)
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=128)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb if give_labels else None)
            model.eval()
            total = 0.0
            with torch.no_grad():
                for xb, yb in val_loader:
                    total += F.cross_entropy(model(xb), yb, reduction="sum").item()
            w.validate(total / len(xv))
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def sorted_run():
    return _watched(True)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_split_of_class_sorted_data_is_named_and_the_gap_is_not_called_overfitting(sorted_run):
    v = sorted_run[NAME]
    assert v.status == "fail" and "classes 8, 9" in v.value and "training labels are 0-7" in v.value
    assert "shuffle before splitting" in v.advice
    over = sorted_run["overfitting"]
    assert over.status == "info" and f"explained by '{NAME}'" in over.value
    assert "early stopping" not in over.advice


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_split_after_shuffling_is_not_named():
    v = _watched(False, epochs=2)
    assert NAME not in v
    assert "explained by" not in v["overfitting"].value


def test_without_the_training_labels_nothing_is_read():
    assert NAME not in _watched(True, epochs=1, give_labels=False)


def test_class_counts_read_one_class_index_per_example():
    a, b = torch.tensor([0, 2, 2, -100]), torch.tensor([1, 2])
    assert class_counts([a, b], -100).tolist() == [1, 1, 3]
    assert class_counts([torch.tensor([[0, 1]])], -100) is None  # tokens (B, T): not read
    assert class_counts([torch.tensor([0.0, 1.0])], -100) is None  # probabilities / soft targets
    assert class_counts([a], None) is None


def test_shares_below_some_pass_and_the_status_grows_with_the_share():
    seen = list(range(8))
    assert unseen_classes(seen, [torch.tensor([10] * 8 + [0, 0])]) is None  # every class seen
    rare = torch.tensor([100] * 8 + [3, 0])  # 3 of 803 validation examples in a class left out by chance
    assert unseen_classes(seen, [rare]) is None
    some = torch.tensor([100] * 8 + [round(800 * SOME / (1 - SOME)) + 1, 0])
    assert unseen_classes(seen, [some]).status == "warn"
    most = torch.tensor([100] * 8 + [round(800 * MOST / (1 - MOST)) + 1, 0])
    assert unseen_classes(seen, [most]).status == "fail"
    assert unseen_classes(None, [most]) is None


def test_the_training_classes_are_those_of_every_step_and_only_of_class_indices():
    classes, span = TrainingClasses(), TrainingClasses.ALL
    for step in range(3 * span):  # three tasks of ALL steps each, reduced every KEPT steps: none is lost
        classes.add(torch.tensor([step // span, -100]))
    assert classes.seen() == [0, 1, 2]
    for labels in (torch.rand(4), torch.zeros(2, 3, dtype=torch.long), None):  # regression, tokens, not given
        partial = TrainingClasses()
        partial.add(torch.tensor([0, 1]))
        partial.add(labels)
        assert partial.seen() is None


def test_classes_added_task_by_task_and_validated_after_the_last_are_not_named():
    torch.manual_seed(0)
    xt, yt, xv, yv = _digits(False)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt) as w:
        for task in (yt < 5, yt >= 5):  # class-incremental: digits 0-4, then 5-9
            for i in range(0, int(task.sum()), 128):
                xb, yb = xt[task][i:i + 128], yt[task][i:i + 128]
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
        model.eval()
        with torch.no_grad():
            w.validate(F.cross_entropy(model(xv), yv).item())
    assert NAME not in {v.check for v in w.report().verdicts}
