"""What doctor.watch reads from the validation losses given to ``w.validate``: a loss that is not finite while
training is (a padding mask inverted: attention over no key gives NaN in eval mode) fails and the loss curve's
reading defers to it; a validation loss far above the training loss without a rising onset (more features than
examples) is information; a small gap passes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.diagnosis import overfitting

PAD = 0


def _token_counts(n, seed):
    """Padded sequences of up to 8 token ids; the label says whether token 1 outnumbers token 2."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 9, (n,), generator=g)
    ids = torch.randint(1, 12, (n, 8), generator=g)
    ids[torch.arange(8)[None] >= lengths[:, None]] = PAD
    return ids, ((ids == 1).sum(1) > (ids == 2).sum(1)).long()


class TokenClassifier(nn.Module):
    """A transformer encoder over token embeddings, mean-pooled over the real tokens."""

    def __init__(self, inverted_mask=False):
        super().__init__()
        self.emb = nn.Embedding(12, 16, padding_idx=PAD)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 2)
        self.inverted_mask = inverted_mask

    def forward(self, ids):
        pad = ids == PAD
        mask = ~pad if self.inverted_mask else pad  # True marks the keys to ignore
        h = self.enc(self.emb(ids), src_key_padding_mask=mask)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def _train_tokens(inverted_mask):
    torch.manual_seed(0)
    x, y = _token_counts(512, 0)
    xv, yv = _token_counts(256, 1)
    model = TokenClassifier(inverted_mask)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    vals = []
    with doctor.watch(model, opt) as w:
        for _ in range(4):
            model.train()
            for i in range(0, len(x), 32):
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 32])
            model.eval()
            with torch.no_grad():
                vals.append(float(F.cross_entropy(model(xv), yv)))
            w.validate(vals[-1])
    return w, vals


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_nan_validation_loss_fails_and_the_loss_curve_defers_to_it():
    w, vals = _train_tokens(inverted_mask=True)
    # torch's eval-mode attention over rows whose every key is masked gives NaN, while training stays finite
    assert not math.isfinite(vals[0]) and all(math.isfinite(v) for v in w.losses)
    report = w.report()
    v = report["overfitting"]
    assert v.status == "fail" and v.value.startswith("validation loss not finite (NaN at validation 1;"), v
    assert "masked" in v.advice and "eval-mode forward" in v.advice
    curve = report["learning rate (loss curve)"]
    assert curve.status == "info" and "validation loss not finite" in curve.value, curve
    assert not any("raise the learning rate" in (r.advice or "") for r in report if r.status in ("warn", "fail"))


@pytest.mark.slow  # 0.33 s each on a 2-core CPU (RESULTS §51)
def test_the_same_model_with_its_mask_right_validates_finite():
    w, vals = _train_tokens(inverted_mask=False)
    assert all(math.isfinite(v) for v in vals)
    report = w.report()
    assert report["overfitting"].status == "pass" and "not finite" not in report["overfitting"].value
    assert report["learning rate (loss curve)"].status == "pass"


def test_a_validation_loss_not_finite_after_training_diverged_blames_training():
    history = [{"train_loss": 0.9, "val_loss": 0.8}, {"train_loss": math.nan, "val_loss": math.inf}]
    v = overfitting(history, None)
    assert v.status == "fail" and "Inf at validation 2" in v.value and "nor is the training loss" in v.value
    # the learning-rate verdict keeps its own fail: it is not explained by the evaluation
    from trainwell.doctor.diagnosis import learning_rate_diagnosis
    from trainwell.doctor.loop_deferral import defer

    curve = learning_rate_diagnosis([1.0 - 0.01 * t for t in range(20)] + [math.nan])
    assert [c.status for c in defer([curve, v])] == ["fail", "fail"]


def _regression(n_train, noise=0.0, d=128, steps=300, seed=0):
    """Linear regression by full-batch gradient descent, validated every 10 steps. With fewer examples than
    features (and no noise) it interpolates the training set, its loss -> 0, while the validation loss falls to
    the part of the initial error outside the span of the training inputs, about (1 - n/d) of it, and never
    rises; with many more examples than features both settle near the noise's variance (the validation loss a
    little above it)."""
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, 1, generator=g) / math.sqrt(d)
    x, xv = torch.randn(n_train, d, generator=g), torch.randn(4096, d, generator=g)
    y = x @ w_true + noise * torch.randn(n_train, 1, generator=g)
    yv = xv @ w_true + noise * torch.randn(4096, 1, generator=g)
    torch.manual_seed(seed)
    model = nn.Linear(d, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=50) as w:
        for step in range(steps):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
            if (step + 1) % 10 == 0:
                with torch.no_grad():
                    w.validate(F.mse_loss(model(xv), yv))
    return w.report()["overfitting"]


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_more_features_than_examples_leaves_a_large_gap_without_an_onset():
    v = _regression(n_train=32)
    assert v.status == "info" and "no rising onset" in v.value, v
    assert "more data" in v.advice and "train_error" in v.advice


@pytest.mark.slow  # 0.32 s each on a 2-core CPU (RESULTS §51)
def test_a_small_gap_passes():
    v = _regression(n_train=1024, noise=0.5, steps=50)  # 5 validations, the last at 0.28 for 0.23 in training
    assert v.status == "pass" and "no onset detected" in v.value, v


@pytest.mark.parametrize("val, status", [(0.5, "pass"), (1.2, "info")])
def test_the_gap_is_read_over_the_last_half_of_the_evaluations(val, status):
    # the training loss falls from 1.0 to 0.2; the validation loss stays level (no onset), moving a little as a
    # trained model's does
    history = [{"train_loss": 1.0 - 0.1 * i, "val_loss": val + 0.01 * (i % 2)} for i in range(9)]
    assert overfitting(history, None).status == status
