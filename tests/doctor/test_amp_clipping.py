"""Gradient clipping in a mixed-precision loop (AMP's GradScaler on the CPU, float16 autocast): clip_grad_norm_
called before scaler.unscale_(optimizer) clips the scaled gradients to max_norm, so every step's gradient norm is
max_norm / scale (1 / 65536 at the scaler's default scale): doctor.watch fails it, naming the order, and the loss
is not read as counted twice. Unscaling first, then clipping, passes; clipping below the usual norm after
unscaling is the ordinary clipping warning, its norms read without the scale."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

GRADIENTS = "loop: gradients at optimizer.step()"


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(20, 64), nn.Linear(64, 64), nn.Linear(64, 4)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def _data(n=1152):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    return x, y


def _amp_loop(order, max_norm=1.0, steps=60):
    """A float16 autocast loop with a GradScaler, as PyTorch's AMP recipe writes it; ``order``: 'unscale_first'
    (the recipe) or 'clip_first'."""
    torch.manual_seed(0)
    x, y = _data()
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu")
    with doctor.watch(model, opt, every=10) as w:
        for s in range(steps):
            i = (s * 64) % len(x)
            xb, yb = x[i : i + 64], y[i : i + 64]
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.cross_entropy(model(xb), yb)
            scaler.scale(loss).backward()
            if order == "clip_first":
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.unscale_(opt)
            else:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            scaler.step(opt)
            scaler.update()
            w.step(loss, y=yb)
    return w.report(), scaler.get_scale()


def _by_check(report):
    return {v.check: v for v in report}


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_clipping_before_unscale_fails_naming_the_order_and_the_loss_is_not_counted_twice():
    report, scale = _amp_loop("clip_first")
    v = _by_check(report)
    grads = v[GRADIENTS]
    assert grads.status == "fail", grads
    assert "clip_grad_norm_ ran before scaler.unscale_(optimizer)" in grads.value
    assert f"max_norm / scale = {1 / scale:.3g}" in grads.value  # 1 / 65536 = 1.53e-05
    assert "scaler.unscale_(optimizer) first" in grads.advice
    assert v["loop: loss"].status == "pass", v["loop: loss"]  # the GradScaler's scale divided out
    assert "counted twice" not in str(v["loop: loss"])


@pytest.mark.parametrize("max_norm", [1.0, 0.5])
@pytest.mark.slow  # 0.20 s each on a 2-core CPU (RESULTS §51)
def test_unscaling_then_clipping_passes(max_norm):
    report, _ = _amp_loop("unscale_first", max_norm=max_norm)
    v = _by_check(report)
    assert v[GRADIENTS].status == "pass", v[GRADIENTS]
    assert v["loop: loss"].status == "pass", v["loop: loss"]


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_clipping_every_step_after_unscale_is_the_usual_warning_with_unscaled_norms():
    """max_norm=0.05, below the unscaled norm (about 0.3) on every step: the clipping warning, its norms those
    backward() gave divided by the scale; the loss read with the scale divided out."""
    report, _ = _amp_loop("unscale_first", max_norm=0.05)
    v = _by_check(report)
    grads = v[GRADIENTS]
    assert grads.status == "warn" and "pinned at 0.05" in grads.value, grads
    low, high = (float(t) for t in grads.value.split("backward() gives ")[1].split(".."))
    assert 0.05 < low <= high < 10  # not the scaled 1e4
    assert v["loop: loss"].status == "pass", v["loop: loss"]


def test_a_hand_written_static_loss_scale_clipped_before_division_fails():
    """(loss * 1024).backward(), clip_grad_norm_, then .grad /= 1024 (a static loss scale without GradScaler): the
    scale is read from the loss's gradient, the clipping named, the loss's 1024x not read as counted twice."""
    torch.manual_seed(0)
    x, y = _data()
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(60):
            i = (s * 64) % len(x)
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            (loss * 1024).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for p in model.parameters():
                p.grad /= 1024
            opt.step()
            w.step(loss)
    v = _by_check(w.report())
    assert v[GRADIENTS].status == "fail", v[GRADIENTS]
    assert "clipped while multiplied by the loss scale 1024" in v[GRADIENTS].value
    loss = v["loop: loss"]  # the scale is read as divided out (clipping only shrinks): named by the clipping verdict
    assert loss.status == "pass" and "the loss scale 1024 divided out" in loss.value, loss
    assert "counted twice" not in f"{loss.value} {loss.advice}"


def _static_scale_loop(divide, max_norm=None, lr=0.05, steps=60):
    """A hand-written static loss scale: (loss * 1024).backward(), then (``divide``) .grad /= 1024, then (with
    ``max_norm``) clip_grad_norm_, then the step."""
    torch.manual_seed(0)
    x, y = _data()
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(steps):
            i = (s * 64) % len(x)
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            (loss * 1024).backward()
            if divide:
                for p in model.parameters():
                    p.grad /= 1024
            if max_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            opt.step()
            w.step(loss, y=y[i : i + 64])
    return _by_check(w.report())


@pytest.mark.parametrize("max_norm", [None, 0.05])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_a_static_loss_scale_divided_out_before_clipping_passes(max_norm):
    """The scale divided out of .grad, then clipped (max_norm=0.05 clips every step): the loss passes with the scale
    divided out, never read as counted twice; the clipping warning quotes the unscaled norms."""
    v = _static_scale_loop(divide=True, max_norm=max_norm)
    loss = v["loop: loss"]
    assert loss.status == "pass" and "the loss scale 1024 divided out" in loss.value, loss
    assert not any("counted twice" in f"{t.value} {t.advice}" for t in v.values())
    if max_norm is not None:
        grads = v[GRADIENTS]
        assert grads.status == "warn" and "pinned at 0.05" in grads.value, grads
        low, high = (float(t) for t in grads.value.split("backward() gives ")[1].split(".."))
        assert 0.05 < low <= high < 10  # the unscaled norms, not 1024x them


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_static_loss_scale_never_divided_out_fails_naming_the_scale():
    v = _static_scale_loop(divide=False, lr=1e-4)
    loss = v["loop: loss"]
    assert loss.status == "fail" and "multiplied by 1024 before backward()" in loss.value, loss
    assert "1024x too large" in loss.value and "p.grad /= 1024" in loss.advice
    assert "counted twice" not in f"{loss.value} {loss.advice}"
    curve = v["learning rate (loss curve)"]
    assert curve.status == "info" or "learning rate" not in (curve.advice or ""), curve


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_static_loss_scale_clipped_without_division_warns_naming_the_scale():
    """max_norm=5 is above the unscaled norm (about 1) but below the scaled one: clipping pins every update at 5."""
    v = _static_scale_loop(divide=False, max_norm=5.0)
    loss = v["loop: loss"]
    assert loss.status == "warn" and "clipped without dividing it out" in loss.value, loss
    low, high = (float(t) for t in loss.value.split("unscaled gradient's (")[1].split(")")[0].split(".."))
    assert low <= high < 5.0


def test_a_diverging_scaled_run_still_reads_its_static_scale():
    """A run the undivided scale made diverge: later steps saturate (their loss weight reads 32, not 1024) and clip
    gradients that grew past 1024 x max_norm (a clip factor below 1/1024, which alone reads as 'divided'). The first
    step's reading decides; those later ones no longer hide it (on one CPU they did)."""
    from trainwell.doctor.loss_scaling import undivided_scale

    def step(weight, scale):
        return {"loss_weight": weight, "scale": scale, "resid": 1e-8, "backwards": 1, "rows": 32, "amp_scale": None,
                "incoming_norm": 2000.0}

    steps = [step(1024.0, 0.0028), step(1024.0, 0.004), step(32.0, 1.0), step(1024.0, 0.0005)]
    v = undivided_scale("loop: loss", steps, adaptive=False)
    assert v is not None and v.status == "warn" and "clipped without dividing it out" in v.value
    divided = [step(1024.0, 1 / 1024), step(1024.0, 0.0005)]  # the scale divided out, then clipped: no verdict
    assert undivided_scale("loop: loss", divided, adaptive=False) is None
