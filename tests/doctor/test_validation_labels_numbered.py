"""Class names encoded per split (a LabelEncoder fitted on the training file, another on a validation file that
lacks one class): the validation labels are numbered differently, and the validation loss climbs. The watch names
the numbering (not overfitting); one encoder for both splits is not named."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.preprocessing import LabelEncoder
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.relabelled_validation import NAME, confusion, relabelled

WORDS = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def _watched(two_encoders: bool):
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, names = torch.tensor(x, dtype=torch.float32) / 16, WORDS[y]  # the labels as written in a CSV
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, names = x[perm], names[perm.numpy()]
    xt, nt, xv, nv = x[:1400], names[:1400], x[1400:], names[1400:]
    encoder = LabelEncoder().fit(nt)
    yt = torch.tensor(encoder.transform(nt))
    if two_encoders:  # a validation file without 'eight', encoded on its own: the classes after it shift
        keep = nv != "eight"
        xv, yv = xv[torch.tensor(keep)], torch.tensor(LabelEncoder().fit_transform(nv[keep]))
    else:
        yv = torch.tensor(encoder.transform(nv))
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(xt, yt), batch_size=128, shuffle=True)
    with doctor.watch(model, opt) as w:
        for _ in range(4):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def two_encoders():
    return _watched(True)


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_labels_encoded_per_split_are_named_and_the_gap_is_not_called_overfitting(two_encoders):
    v = two_encoders[NAME]
    assert v.status == "fail" and "numbered differently" in v.value
    # LabelEncoder sorts the names: without 'eight', 'five' is 0 in validation and 1 in training
    assert "renumbered (validation label 0 as 1" in v.value
    assert "one encoder fitted on the training labels" in v.advice
    over = two_encoders["overfitting"]
    assert f"explained by '{NAME}'" in over.value and "early stopping" not in over.advice


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_one_encoder_for_both_splits_is_not_named():
    v = _watched(False)
    assert NAME not in v


def test_the_numbering_that_agrees_best_is_found_among_the_training_classes():
    scores = torch.eye(4)[[1, 2, 3, 0] * 10] * 5  # the model predicts class k+1 for validation label k
    target = torch.tensor([0, 1, 2, 3] * 10)
    table = confusion(scores, target, -100)
    assert table.tolist() == [[0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 0, 10], [10, 0, 0, 0]]
    v = relabelled(table, [0, 1, 2, 3])
    assert v.status == "fail" and "agree with 0% of them as given, with 100% renumbered" in v.value
    assert relabelled(confusion(scores, torch.tensor([1, 2, 3, 0] * 10), -100), [0, 1, 2, 3]) is None  # as given
    assert relabelled(table, [0]) is None  # rows of classes the training never had are left out: too few read
    poor = confusion(torch.zeros(40, 4), target, -100)  # every prediction class 0: no numbering agrees
    assert relabelled(poor, [0, 1, 2, 3]) is None
    assert confusion(torch.zeros(4, 3, 5), torch.zeros(4, 5, dtype=torch.long), -100) is None  # (B, C, T): not read
