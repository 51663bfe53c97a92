"""A user's Brier score: the squared error between softmax probabilities and one-hot targets (Brier 1950), here on
two classes with a rare positive class. Its targets are labels, so their offset (the class prior) is not a raw unit
to standardize; targets that are a regression's keep the warning."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.initial_loss import initial_loss

FEATURES = 8


def _rare_positives(n=512, share=0.045, seed=0):
    """Standardized features; the positive class is the top ``share`` of a linear score of them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    score = x[:, 0] + 0.5 * x[:, 1]
    return x, (score > torch.quantile(score, 1 - share)).long()


def _classifier(softmax_last):
    torch.manual_seed(0)
    layers = [nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 2)]
    return nn.Sequential(*layers, nn.Softmax(dim=1)) if softmax_last else nn.Sequential(*layers)


def _flagged(report):
    return [(v.check, v.status, str(v.value)) for v in report.verdicts if v.status in ("warn", "fail")]


def test_a_brier_score_on_a_rare_class_is_not_told_to_standardize_its_one_hot_targets():
    x, y = _rare_positives()
    model = _classifier(softmax_last=True)
    onehot = F.one_hot(y, 2).float()
    report = doctor.check(model, x, onehot, nn.MSELoss(), optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    assert _flagged(report) == []
    assert not any("standardize" in v.advice for v in report.verdicts)


def _brier(logits, target):
    return ((logits.softmax(1) - F.one_hot(target, logits.shape[1]).float()) ** 2).sum(1).mean()


def test_a_brier_score_written_on_the_logits_gets_no_warning():
    x, y = _rare_positives()
    model = _classifier(softmax_last=False)
    report = doctor.check(model, x, y, _brier, optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    assert _flagged(report) == []
    assert report["initial loss"].status == "pass"  # judged: a reweighted cross-entropy's gradient at uniform


def test_a_brier_score_on_saturated_initial_scores_is_named():
    x, y = _rare_positives()
    model = _classifier(softmax_last=False)
    with torch.no_grad():
        model[2].weight.mul_(30.0)  # a softmax pinned at 0 or 1: the squared error's gradient vanishes there
    verdict = initial_loss(model, x, y, _brier)
    assert verdict.status in ("warn", "fail") and "not near-uniform" in verdict.advice, verdict.value


def test_regression_targets_with_a_large_offset_are_still_told_to_standardize():
    x, _ = _rare_positives()
    target = (3.0 + 0.3 * torch.tanh(x[:, :2].sum(1))).unsqueeze(1)  # a fraction of its mean: not labels
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 1))
    verdict = doctor.check(model, x, target, nn.MSELoss())["initial loss"]
    assert verdict.status == "warn" and "standardize" in verdict.advice
