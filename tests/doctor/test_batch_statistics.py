"""The doctor on BatchNorm trained with batches too small for its statistics: an MLP with ``nn.BatchNorm1d`` fed
by ``DataLoader(batch_size=2)`` normalizes 2 values per channel, whose outputs are exactly -1 and +1 whatever the
inputs; the watch names it (not the learning rate, not underfitting). A CNN's ``BatchNorm2d`` on batch 2 but 8 x 8
positions normalizes 128 values per channel and is not flagged, nor is an MLP trained with batches of 32."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor


def _blobs(n=512, d=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 3.0 * torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def _mlp(d=16, classes=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 64), nn.BatchNorm1d(64), nn.ReLU(),
                         nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, classes))


def _train(model, x, y, batch, epochs=1, steps=None):
    """The user's loop: a shuffled DataLoader, SGD with momentum, a validation per epoch."""
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            model.train()
            for i, (xb, yb) in enumerate(loader):
                if steps is not None and i >= steps:
                    break
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(float(F.cross_entropy(model(x), y)))
    model.eval()
    with torch.no_grad():
        error = float((model(x).argmax(1) != y).float().mean())
    return w.report(train_error=error, val_error=error + 0.01)


def _verdict(report, name="loop: batch statistics"):
    return next((v for v in report if v.check == name), None)


def test_batchnorm_on_two_values_outputs_only_the_sign():
    """The claim the verdict rests on: BatchNorm in train mode maps any 2 values per channel to -1 and +1."""
    bn = nn.BatchNorm1d(8).train()
    out = bn(torch.randn(2, 8) * 5 + 3)
    assert torch.allclose(out.abs(), torch.ones_like(out), atol=1e-3)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_batch_of_two_through_batchnorm1d_is_named_and_the_rate_is_not_blamed():
    x, y = _blobs()
    report = _train(_mlp(), x, y, batch=2, steps=120)
    v = _verdict(report)
    assert v is not None and v.status == "fail", v
    assert "2 values per channel" in str(v.value) and "'1' (BatchNorm1d)" in str(v.value)
    assert "GroupNorm" in v.advice and "larger batch" in v.advice
    for other in report:  # the downstream readings defer to it
        if other.check in ("learning rate (loss curve)", "bias/variance", "monitor: update/weight ratio",
                           "monitor: vanishing gradients"):
            assert other.status in ("info", "pass", "skip"), other


@pytest.mark.slow  # ~1 s: 4 epochs of a watched loop
def test_the_overfitting_reading_of_batches_of_two_names_the_batch_statistics_not_the_labels():
    """Trained on batches of 2, the network passes on little of its inputs, and in eval mode (running statistics)
    computes another function than the one trained: a validation that rises is no overfitting to send the reader
    to the labels or the data for."""
    x, y = _blobs()
    report = _train(_mlp(), x, y, batch=2, epochs=4, steps=60)
    assert _verdict(report).status == "fail"
    gap = _verdict(report, "overfitting")
    assert gap is not None and gap.status in ("info", "pass"), gap
    if gap.status == "info":
        assert gap.value.endswith("(explained by 'loop: batch statistics')"), gap
        assert gap.advice.startswith("fix 'loop: batch statistics' first:") and "labels" not in gap.advice


@pytest.mark.parametrize("batch, status", [(3, "warn"), (4, "warn"), (8, "pass"), (32, "pass")])
def test_the_threshold_is_four_values_per_channel(batch, status):
    x, y = _blobs()
    v = _verdict(_train(_mlp(), x, y, batch=batch, steps=25))
    assert v is not None and v.status == status, v


def test_batchnorm2d_on_two_images_of_8x8_positions_is_not_flagged():
    """128 values per channel (2 images x 64 positions): BatchNorm's statistics are over enough values."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    v = _verdict(_train(model, x, y, batch=2, steps=30))
    assert v is not None and v.status == "pass" and "128 or more values" in str(v.value), v


def test_batchnorm1d_over_a_sequence_counts_its_positions():
    """BatchNorm1d on (N, C, L) normalizes N x L values per channel: batch 2 of length 16 is 32 values."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, 16, generator=g)
    y = (x[:, 0].mean(1) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 2))
    v = _verdict(_train(model, x, y, batch=2, steps=30))
    assert v is not None and v.status == "pass" and "32 or more values" in str(v.value), v


def test_no_verdict_without_batchnorm():
    x, y = _blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    assert _verdict(_train(model, x, y, batch=2, steps=20)) is None


def test_an_overfitting_warning_beside_the_batch_statistics_fail_is_explained_by_it():
    from trainwell.doctor.loop_deferral import defer
    from trainwell.doctor.verdict import Verdict

    cause = Verdict("loop: batch statistics", "fail", "BatchNorm layers '1' (BatchNorm1d) normalized 2 values per "
                    "channel on 54 of 54 observed training forwards", "more than 4 values per channel", "train with a "
                    "larger batch")
    gap = Verdict("overfitting", "warn", "gap: val - train loss 0.004; validation never improved", "val loss not "
                  "rising while train falls", "check that the labels are aligned with their inputs")
    deferred = {v.check: v for v in defer([cause, gap])}["overfitting"]
    assert deferred.status == "info" and deferred.value.endswith("(explained by 'loop: batch statistics')")
    assert "eval mode (running statistics)" in deferred.advice
