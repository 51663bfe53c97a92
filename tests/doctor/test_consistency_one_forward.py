"""FixMatch-style consistency written with one forward over both views (Sohn et al. 2020): ``logits =
model(torch.cat([x_weak, x_strong]))``, the weak rows' softmax the strong rows' targets. Without ``.detach()`` the
targets carry the loss's gradient, which `loop: loss` names; detached, or computed under ``torch.no_grad()`` in a
forward of their own, they pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, C, B = 10, 4, 64


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(C, D, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, D, generator=g), y


def _fixmatch(target, labelled_in_batch=False, steps=30):
    """A user's loop: a labelled batch of 32 and B unlabelled examples seen twice (weak and strong noise);
    ``labelled_in_batch``: all three in one forward (``torch.cat([x_l, weak, strong])``), else the labelled batch
    in a forward of its own."""
    torch.manual_seed(0)
    xl, yl = _blobs(128, 0)
    xu, _ = _blobs(1024, 1)
    model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(steps):
            il, iu = torch.randint(0, 128, (32,)), torch.randint(0, 1024, (B,))
            weak, strong = xu[iu] + 0.1 * torch.randn(B, D), xu[iu] + 0.5 * torch.randn(B, D)
            if target == "no_grad forward":
                supervised = F.cross_entropy(model(xl[il]), yl[il])
                with torch.no_grad():
                    pseudo = model(weak).softmax(-1)
                logits_strong = model(strong)
            else:
                if labelled_in_batch:
                    logits = model(torch.cat([xl[il], weak, strong]))
                    supervised = F.cross_entropy(logits[:32], yl[il])
                    logits_weak, logits_strong = logits[32:].chunk(2)
                else:
                    supervised = F.cross_entropy(model(xl[il]), yl[il])
                    logits = model(torch.cat([weak, strong]))
                    logits_weak, logits_strong = logits[:B], logits[B:]
                pseudo = logits_weak.softmax(-1) if target == "attached" else logits_weak.detach().softmax(-1)
            loss = supervised + F.cross_entropy(logits_strong, pseudo)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yl[il])
    return w.report()


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
@pytest.mark.parametrize("labelled_in_batch", [False, True], ids=["views only", "labelled, weak, strong"])
def test_targets_from_the_weak_rows_of_one_forward_with_their_gradient_are_named(labelled_in_batch):
    verdict = _fixmatch("attached", labelled_in_batch)["loop: loss"]
    assert verdict.status == "warn", verdict
    assert "cross-entropy against the model's own softmax on other rows of the same forward" in verdict.value, verdict
    assert "no_grad" in verdict.advice, verdict


@pytest.mark.parametrize("target, labelled_in_batch", [("detached", False), ("detached", True),
                                                       ("no_grad forward", False)])
@pytest.mark.slow  # 0.20 s each on a 2-core CPU (RESULTS §51)
def test_detached_targets_or_targets_computed_under_no_grad_pass(target, labelled_in_batch):
    report = _fixmatch(target, labelled_in_batch)
    assert not [v for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")], report
