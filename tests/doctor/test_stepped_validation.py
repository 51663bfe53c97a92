"""A validation loop copied from the training loop, its ``loss.backward()`` and ``optimizer.step()`` kept: the model
trains on the validation batches at every epoch's end. The watch's ``loop: train/eval mode`` names it from the
eval-mode steps that begin with the same validation batch every epoch; a validation mid-epoch that leaves eval mode
on (shuffled training batches in eval mode) is named as that, and a healthy validation passes."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: train/eval mode"


def _run(kind: str):
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(256, 6, generator=g), torch.randn(64, 6, generator=g)
    y, yv = (x[:, 0] > 0).long(), (xv[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(4):
            model.train()
            perm = torch.randperm(256)
            for i in range(0, 256, 32):
                idx = perm[i:i + 32]
                if kind == "mid_epoch" and i == 128:
                    model.eval()  # a look at the validation halfway, model.train() forgotten
                    with torch.no_grad():
                        F.cross_entropy(model(xv), yv)
                opt.zero_grad()
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
            model.eval()
            total = 0.0
            with torch.no_grad() if kind != "stepping" else torch.enable_grad():
                for i in range(0, 64, 16):
                    val_loss = F.cross_entropy(model(xv[i:i + 16]), yv[i:i + 16])
                    if kind == "stepping":  # copied from the training loop
                        opt.zero_grad()
                        val_loss.backward()
                        opt.step()
                    total += val_loss.item() * 16
            w.validate(total / 64)
    return next(v for v in w.report().verdicts if v.check == NAME)


def test_a_validation_loop_that_steps_the_optimizer_is_named():
    v = _run("stepping")
    assert v.status == "fail" and "16 of 48 training steps ran in eval mode, in 4 runs that each began" in v.value
    assert "optimizer.step() on the validation set" in v.value and "torch.no_grad()" in v.advice


def test_eval_mode_left_on_mid_epoch_is_named_as_before():
    v = _run("mid_epoch")
    assert v.status in ("warn", "fail") and "validation set" not in v.value and "model.train()" in v.advice


def test_a_healthy_validation_passes():
    assert _run("healthy").status == "pass"
