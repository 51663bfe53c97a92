"""Mixup and CutMix written with one permutation for the inputs and another for the labels, against the healthy
loops (one permutation, timm's flip, label smoothing, a teacher's soft targets, a batch shuffled in place)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

C, B = 4, 32


def _blobs(n, seed, shape=(8,)):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(C, *shape, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, *shape, generator=g), y


def _mixup(xb, yb, lam, mix, labels):
    """(loss inputs, loss, targets for w.step) of one batch under ``mix``; ``labels``: "same" permutation as the
    inputs, or "other"."""
    perm = torch.randperm(len(xb))
    other = perm if labels == "same" else torch.randperm(len(xb))
    if mix == "soft targets":  # x and the one-hot labels mixed, cross-entropy on the mixed targets
        onehot = F.one_hot(yb, C).float()
        return lam * xb + (1 - lam) * xb[perm], None, lam * onehot + (1 - lam) * onehot[other]
    if mix == "two losses":  # Zhang et al.'s reference code: two cross-entropies weighted by lam
        return lam * xb + (1 - lam) * xb[perm], (yb, yb[other]), yb
    if mix == "flip":  # timm pairs each example with the batch reversed
        onehot = F.one_hot(yb, C).float()
        paired = onehot.flip(0) if labels == "same" else onehot[other]
        return lam * xb + (1 - lam) * xb.flip(0), None, lam * onehot + (1 - lam) * paired
    if mix == "timm":  # timm: the batch mixed in place with its flip, targets from the labels and their flip, smoothed
        xb = xb.clone()
        flipped = xb.flip(0).mul_(1 - lam)
        xb.mul_(lam).add_(flipped)
        off, on = 0.1 / C, 1 - 0.1 + 0.1 / C
        second = yb.flip(0) if labels == "same" else yb[other]
        y1, y2 = (F.one_hot(t, C).float() * (on - off) + off for t in (yb, second))
        return xb, None, lam * y1 + (1 - lam) * y2
    raise ValueError(mix)


def _train(mix, labels, steps=12):
    torch.manual_seed(0)
    x, y = _blobs(B * steps, 0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    beta = torch.distributions.Beta(0.4, 0.4)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, len(x), B):
            xb, yb = x[i : i + B], y[i : i + B]
            lam = float(beta.sample().clamp(0.05, 0.95))
            inputs, pair, targets = _mixup(xb, yb, lam, mix, labels)
            out = model(inputs)
            if pair is None:
                loss = F.cross_entropy(out, targets)
            else:
                loss = lam * F.cross_entropy(out, pair[0]) + (1 - lam) * F.cross_entropy(out, pair[1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=targets)
    return w.report()


@pytest.mark.parametrize("mix", ["soft targets", "two losses", "flip", "timm"])
def test_labels_mixed_with_another_permutation_than_the_inputs_fail(mix):
    verdict = _train(mix, "other")["loop: mixed labels"]
    assert verdict.status == "fail", verdict
    assert "the inputs were mixed (mixup or CutMix) with one permutation of the batch and the labels with " \
           "another" in verdict.value
    assert "use it for both" in verdict.advice


@pytest.mark.parametrize("mix", ["soft targets", "two losses", "flip", "timm"])
def test_labels_mixed_with_the_inputs_permutation_pass(mix):
    verdict = _train(mix, "same")["loop: mixed labels"]
    assert verdict.status == "pass" and "labels were mixed with the inputs' permutation" in verdict.value, verdict


def _cutmix(labels):
    """CutMix on 3x16x16 images: a square pasted in place from the batch under one permutation, the two labels'
    cross-entropies weighted by the pasted area."""
    torch.manual_seed(0)
    x, y = _blobs(B * 6, 0, (3, 16, 16))
    model = nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, len(x), B):
            xb, yb = x[i : i + B].clone(), y[i : i + B]
            index = torch.randperm(B)
            a = int(torch.randint(0, 13, ()))
            b = int(torch.randint(a + 3, 17, ()))
            xb[:, :, a:b, a:b] = xb[index, :, a:b, a:b]
            lam = 1 - (b - a) ** 2 / 256
            second = yb[index] if labels == "same" else yb[torch.randperm(B)]
            out = model(xb)
            loss = lam * F.cross_entropy(out, yb) + (1 - lam) * F.cross_entropy(out, second)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return w.report()


@pytest.mark.parametrize("labels, failed", [("other", True), ("same", False)])
def test_cutmix_labels_are_read_against_the_pasted_inputs(labels, failed):
    verdict = _cutmix(labels)["loop: mixed labels"]
    assert verdict.status == ("fail" if failed else "pass"), verdict


@pytest.mark.parametrize("targets", ["label smoothing", "teacher", "shuffled batch"])
def test_soft_targets_without_mixing_pass(targets):
    """Label smoothing, a teacher's probabilities and a batch shuffled in place (x and y by one permutation, no
    mix) give nothing to read."""
    torch.manual_seed(0)
    x, y = _blobs(B * 8, 0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, len(x), B):
            xb, yb = x[i : i + B], y[i : i + B]
            if targets == "label smoothing":
                loss, t = F.cross_entropy(model(xb), yb, label_smoothing=0.1), yb
            elif targets == "teacher":
                t = torch.softmax(xb[:, :C] / 2, 1)
                loss = F.cross_entropy(model(xb), t)
            else:
                order = torch.randperm(B)
                xb, t = xb[order], yb[order]
                loss = F.cross_entropy(model(xb), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=t)
    assert "loop: mixed labels" not in w.report().checks


def test_a_mixed_row_is_read_with_its_weights():
    """The rows of 0.7 a + 0.3 a[perm] are mixes of a and a[perm]; a row scaled alone or another mix is not; so
    too on images read on every other value (3x64x64: 12288 values, 4096 read)."""
    from trainwell.doctor.mixup_pairs import ROW_ELEMENTS, _rows, mixed_rows

    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 5, generator=g)
    perm = torch.randperm(16, generator=g)
    assert mixed_rows(0.7 * a + 0.3 * a[perm], a, a[perm])
    assert not mixed_rows(a[perm], a, a[perm])  # nothing of a
    assert not mixed_rows(0.7 * a + 0.3 * a[perm.flip(0)], a, a[perm])
    images = torch.randn(16, 3, 64, 64, generator=g)
    read = _rows(images)
    assert read.shape == (16, ROW_ELEMENTS) and torch.equal(read, images.reshape(16, -1)[:, ::3])
    assert mixed_rows(_rows(0.7 * images + 0.3 * images[perm]), read, read[perm])
