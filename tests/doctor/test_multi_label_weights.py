"""A multi-label classifier under binary cross-entropy with ``pos_weight``: weights that grow with the label's
frequency (``pos / neg``, the ratio turned round) are named by check and watch, read from the loss's gradient;
torch's ``neg / pos``, one weight for every label, and no weights pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

POS_GROW = "pos_weight grows with the label's frequency"


def _labels(n=2048, d=20):
    """Six labels from 33% down to under 1% positives."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, 6, generator=torch.Generator().manual_seed(99))
    bias = torch.tensor([-0.5, -1.0, -1.5, -2.0, -2.5, -3.0])
    y = ((x @ w) / 4.5 + bias + 0.3 * torch.randn(n, 6, generator=g) > 0).float()
    return x, y


def _weighted_bce(pos_weight):
    """Binary cross-entropy with logits written out, positives weighted per label."""
    def loss(out, t):
        return -(pos_weight * t * F.logsigmoid(out) + (1 - t) * F.logsigmoid(-out)).mean()
    return loss


def _run(weights: str, hand_written=False):
    torch.manual_seed(0)
    x, y = _labels()
    pos = y.sum(0)
    neg = len(y) - pos
    assert pos.max() > 20 * pos.min() > 0  # the labels are imbalanced
    pos_weight = {"inverted": pos / neg, "balanced": neg / pos, "one": torch.tensor(3.0), "none": None}[weights]
    loss_fn = _weighted_bce(pos_weight) if hand_written else nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 6))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    checked = doctor.check(model, x[:256], y[:256], loss_fn, optimizer=opt)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return checked, w.report()


@pytest.mark.parametrize("hand_written", [False, True])
@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_pos_weight_turned_round_is_named_by_check_and_watch(hand_written):
    checked, watched = _run("inverted", hand_written)
    assert checked["class weights"].status == "warn" and str(checked["class weights"].value).startswith(POS_GROW)
    assert "(len(y) - y.sum(0)) / y.sum(0)" in checked["class weights"].advice
    assert watched["loop: class weights"].status == "warn"
    assert str(watched["loop: class weights"].value).startswith(POS_GROW)
    overfit = checked["overfit a tiny subset"]
    assert overfit.status == "pass" or "class weights" in overfit.advice  # the weights named as its cause


@pytest.mark.parametrize("weights", ["balanced", "one", "none"])
@pytest.mark.slow  # 0.24 s each on a 2-core CPU (RESULTS §51)
def test_balanced_equal_or_no_pos_weight_passes(weights):
    checked, watched = _run(weights)
    for report in (checked, watched):
        assert not [v for v in report if v.check.endswith("class weights") and v.status in ("warn", "fail")]
    assert not checked.failed
