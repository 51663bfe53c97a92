"""Semi-supervised training with pseudo-labels (FixMatch, Sohn et al. 2020): each step adds a mean cross-entropy on
a small labelled batch to a mean cross-entropy of an unlabelled batch's strongly perturbed view against the
confident predictions on its weakly perturbed view. The labelled batch is soon fitted to saturation (one class's
probability within 1e-4 of 1), and the loss is a sum of two means over two forwards. Neither is a double softmax
nor a loss counted twice; a softmax inside the loss and a loss added to itself still are."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, C = 10, 4


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(C, D, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, D, generator=g), y


def _fixmatch(labelled_loss=F.cross_entropy, twice=False, steps=120):
    torch.manual_seed(0)
    xl, yl = _blobs(128, 0)
    xu, _ = _blobs(2048, 1)
    model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(steps):
            il, iu = torch.randint(0, 128, (32,)), torch.randint(0, 2048, (96,))
            weak, strong = xu[iu] + 0.1 * torch.randn(96, D), xu[iu] + 0.5 * torch.randn(96, D)
            supervised = labelled_loss(model(xl[il]), yl[il])
            if twice:
                supervised = supervised + supervised
            with torch.no_grad():
                confidence, pseudo = model(weak).softmax(1).max(1)
            mask = (confidence > 0.9).float()
            unsupervised = (F.cross_entropy(model(strong), pseudo, reduction="none") * mask).mean()
            loss = supervised + unsupervised
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yl[il])
    return w.report()


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
def test_a_fitted_labelled_batch_plus_a_pseudo_label_term_is_a_sum_of_two_means():
    report = _fixmatch()
    verdict = report["loop: loss"]
    assert verdict.status == "pass" and "a sum of 2 terms" in verdict.value, verdict
    assert not [v for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_a_softmax_inside_the_labelled_loss_is_still_a_double_softmax():
    verdict = _fixmatch(labelled_loss=lambda z, y: F.cross_entropy(z.softmax(1), y))["loop: loss"]
    assert verdict.status == "fail" and "probabilities" in verdict.value, verdict


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
def test_the_labelled_loss_added_to_itself_is_still_counted_twice():
    verdict = _fixmatch(twice=True)["loop: loss"]
    assert verdict.status == "warn" and "(32 examples) is 2x" in verdict.value, verdict


@pytest.mark.parametrize("boost, softmax_in_loss, form", [(13.0, False, "cross_entropy"),
                                                         (3.0, True, "cross_entropy_on_probabilities")])
def test_saturated_float32_rows_read_as_cross_entropy_and_a_softmax_in_the_loss_still_named(boost, softmax_in_loss,
                                                                                             form):
    from trainwell.doctor.loss_form import read_form

    torch.manual_seed(1)
    z = torch.randn(32, C) * 2
    y = torch.randint(0, C, (32,))
    z[torch.arange(32), y] += boost  # at 13, p(label) - 1 rounds in float32 on most rows
    z.requires_grad_(True)
    F.cross_entropy(z.softmax(1) if softmax_in_loss else z, y).backward()
    assert read_form(z.detach(), z.grad)["form"] == form
