"""Consistency regularization on unlabelled data (UDA, Xie et al. 2020): a labelled batch's cross-entropy plus a
KL divergence (or a cross-entropy against sharpened soft targets) of the strongly perturbed view's predictions
against the weakly perturbed view's softmax. The targets must be held constant; computed with gradients they are
pulled towards the student's predictions, which `loop: loss` names. The same loop with the targets detached, and
the Pi-model (Laine & Aila 2017), whose squared error between both views' softmaxes trains both on purpose, pass."""

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


def _consistency(target, steps=40):
    """A user's loop; ``target``: how the unlabelled term is written."""
    torch.manual_seed(0)
    xl, yl = _blobs(128, 0)
    xu, _ = _blobs(1024, 1)
    model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(steps):
            il, iu = torch.randint(0, 128, (32,)), torch.randint(0, 1024, (64,))
            weak, strong = xu[iu] + 0.1 * torch.randn(64, D), xu[iu] + 0.5 * torch.randn(64, D)
            supervised = F.cross_entropy(model(xl[il]), yl[il])
            if target == "kl":  # the weak view's softmax, with its gradient
                unsupervised = F.kl_div(F.log_softmax(model(strong), -1), model(weak).softmax(-1),
                                        reduction="batchmean")
            elif target == "kl_detached":
                unsupervised = F.kl_div(F.log_softmax(model(strong), -1), model(weak).softmax(-1).detach(),
                                        reduction="batchmean")
            elif target == "sharpened":  # sharpened at T = 0.4, with its gradient
                unsupervised = F.cross_entropy(model(strong), (model(weak) / 0.4).softmax(-1))
            elif target == "pi_model":
                unsupervised = F.mse_loss(model(strong).softmax(-1), model(weak).softmax(-1))
            loss = supervised + unsupervised
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yl[il])
    return w.report()


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_kl_divergence_against_targets_with_gradients_is_named():
    verdict = _consistency("kl")["loop: loss"]
    assert verdict.status == "warn" and "KL divergence against the model's own softmax" in verdict.value, verdict
    assert "no_grad" in verdict.advice and "Pi-model" in verdict.advice, verdict


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_the_same_loop_with_the_targets_detached_is_not_warned():
    report = _consistency("kl_detached")
    assert not [v for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_sharpened_targets_with_gradients_are_named_with_their_temperature():
    verdict = _consistency("sharpened")["loop: loss"]
    assert verdict.status == "warn" and "sharpened at T = 0.4" in verdict.value, verdict


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_the_pi_model_trains_both_branches_on_purpose_and_is_not_warned():
    report = _consistency("pi_model")
    assert report["loop: loss"].status != "warn", report["loop: loss"]
    assert not [v for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_the_targets_and_their_gradient_are_read_back_exactly(temperature):
    from trainwell.doctor.pseudo_targets import differentiated_soft_target

    torch.manual_seed(0)
    weak, strong = (torch.randn(16, 5, requires_grad=True) for _ in range(2))
    F.cross_entropy(strong, (weak / temperature).softmax(-1)).backward()
    read = differentiated_soft_target([(weak.detach(), weak.grad), (strong.detach(), strong.grad)])
    assert read is not None and abs(read["temperature"] - temperature) < 1e-3 and read["loss"] == "cross-entropy"
    # the oracle: torch's own gradient on each side
    assert abs(read["ratio"] - float(weak.grad.norm() / strong.grad.norm())) < 1e-6


def test_a_symmetric_kl_between_two_dropout_passes_is_not_read():
    from trainwell.doctor.pseudo_targets import differentiated_soft_target

    torch.manual_seed(0)
    a, b = (torch.randn(16, 5, requires_grad=True) for _ in range(2))
    la, lb = a.log_softmax(-1), b.log_softmax(-1)
    (F.kl_div(la, lb, log_target=True, reduction="batchmean") +
     F.kl_div(lb, la, log_target=True, reduction="batchmean")).backward()  # R-Drop: both directions, on purpose
    assert differentiated_soft_target([(a.detach(), a.grad), (b.detach(), b.grad)]) is None
