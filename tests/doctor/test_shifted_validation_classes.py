"""A validation set whose class frequencies shifted (a later period: 60/30/10 against a balanced training set), its
labels encoded as the training's, is information with the shares; labels renumbered (each class's number moved by
one) still fail as an encoding error, and the overfitting reading of the shifted run defers to the shift."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.shifted_classes import class_shift


def _blobs(counts, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.7]])
    x = torch.cat([centres[c] + 0.8 * torch.randn(n, 2, generator=g) for c, n in enumerate(counts)])
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    order = torch.randperm(len(y), generator=g)
    return x[order], y[order]


def _report(val_counts, renumber=False):
    x, y = _blobs([200, 200, 200], 0)
    xv, yv = _blobs(val_counts, 1)
    if renumber:
        yv = (yv + 1) % 3  # a second encoder: every class's number moved by one
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=20) as w:
        for _epoch in range(6):
            for i in range(0, 600, 32):
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv))
            model.train()
    return {v.check: v for v in w.report()}


def test_a_shift_in_class_frequencies_is_information_with_the_shares():
    report = _report([60, 30, 10])
    labels = report["loop: validation labels"]
    assert labels.status == "info", labels
    assert "class 0: 60% vs 33%" in labels.value and "class 2: 10% vs 33%" in labels.value, labels
    assert "the labels are encoded as the training's" in labels.value, labels
    assert report["overfitting"].status in ("pass", "info"), report["overfitting"]
    assert not [v for v in report.values() if v.status in ("warn", "fail")], report


def test_renumbered_labels_still_fail_and_a_balanced_validation_says_nothing():
    renumbered = _report([34, 33, 33], renumber=True)["loop: validation labels"]
    assert renumbered.status == "fail" and "numbered differently" in renumbered.value, renumbered
    assert "loop: validation labels" not in _report([34, 33, 33])  # the same shares: nothing to say


def test_labels_that_agree_with_chance_are_no_shift():
    drawn_apart = torch.tensor([[20, 20, 20], [10, 10, 10], [3, 3, 4]])  # predictions independent of the labels
    assert class_shift(torch.tensor([200, 200, 200]), drawn_apart) is None
    agreeing = torch.tensor([[30, 2, 2], [2, 29, 2], [1, 1, 31]])  # the training's shares: no shift to name
    assert class_shift(torch.tensor([200, 200, 200]), agreeing) is None


def test_an_ignored_label_id_is_not_a_class_share():
    agreeing = torch.tensor([[30, 2, 2], [2, 29, 2], [1, 1, 31]])
    with_ignored = torch.zeros(256, dtype=torch.long)
    with_ignored[:3], with_ignored[255] = 200, 300  # a segmenter's ignore_index=255 pixels among the training labels
    assert class_shift(with_ignored, agreeing) is None


def test_the_shift_and_the_agreement_are_the_numbers_worked_by_hand():
    # validation 60/30/10 against a uniform training set; 82 of 100 predictions right
    confusion = torch.tensor([[50, 8, 2], [4, 24, 2], [1, 1, 8]])
    verdict = class_shift(torch.tensor([200, 200, 200]), confusion)
    shift = 0.5 * (abs(0.6 - 1 / 3) + abs(0.3 - 1 / 3) + abs(0.1 - 1 / 3))  # 0.267
    chance = 0.6 * 0.55 + 0.3 * 0.33 + 0.1 * 0.12  # row shares . column shares: 0.441
    assert f"by {shift:.0%} (total variation: half the summed differences of the shares" in verdict.value
    assert f"agree with 82% of the validation labels as given (chance {chance:.0%})" in verdict.value
