"""Pre-flight checks: run before training, on any ``nn.Module`` and a batch of its data.

From cs231n's "babysitting the learning process" and Karpathy's "A recipe for training neural networks":
initial loss vs its expected value, gradient check against centred differences, regularization dominance, the
ability to overfit a tiny subset, symmetric (identical) hidden units, variance propagation through depth, an
input-independent baseline, and batch independence. Each returns a :class:`~trainwell.doctor.verdict.Verdict`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> initial_loss(model, x, y).status
    'pass'
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.verdict import Verdict
from trainwell.regularize import l2_penalty

_KINKS = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Hardtanh, nn.ReLU6)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.GELU, nn.ELU)
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _loss_name(loss_fn: Callable) -> str:
    return {F.cross_entropy: "cross_entropy", F.multi_margin_loss: "hinge"}.get(loss_fn, "other")


def _outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, input, output) of every Linear/Conv layer on one forward pass."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen.append((name, args[0], out)))
             for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _suspect_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The weighted layer whose output std / input std ratio is furthest from 1 (in log scale)."""
    rows = [(name, float(out.std() / inp.std().clamp_min(1e-12))) for name, inp, out in _outputs(model, x)]
    if not rows:
        return "no Linear/Conv layer found"
    name, ratio = max(rows, key=lambda r: abs(math.log(max(r[1], 1e-12))))
    return f"layer '{name}' scales the signal std by {ratio:.3g}"


@torch.no_grad()
def initial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                 num_classes: int | None = None) -> Verdict:
    """Loss at initialization vs its expectation: ln C for softmax cross-entropy, (C - 1)/C for torch's
    multiclass hinge (C - 1 when summed over classes rather than averaged)."""
    was = model.training
    model.eval()
    try:
        out = model(x)
        loss = float(loss_fn(out, y))
    finally:
        model.train(was)
    c = num_classes or out.shape[1]
    kind = _loss_name(loss_fn)
    if kind == "cross_entropy":
        expected, formula = math.log(c), f"ln C = ln {c}"
    elif kind == "hinge":
        expected, formula = (c - 1) / c, f"(C-1)/C = {c - 1}/{c} (C-1 summed over classes)"
    else:
        return Verdict("initial loss", "pass", round(loss, 4), "no expectation for this loss",
                       "compare with a constant predictor's loss")
    ratio = loss / expected
    if not math.isfinite(loss):
        status = "fail"
    elif 0.8 <= ratio <= 1.25:
        status = "pass"
    elif 0.5 <= ratio <= 2.0:
        status = "warn"
    else:
        status = "fail"
    advice = "" if status == "pass" else (
        f"initial outputs are not near-uniform: {_suspect_layer(model, x)}; shrink the last layer's init scale "
        f"or use Xavier/He init")
    return Verdict("initial loss", status, round(loss, 4), f"{formula} = {expected:.4f}", advice)


def regularization_raises_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               loss_fn: Callable = F.cross_entropy,
                               penalty: Callable[[nn.Module, float], torch.Tensor] = l2_penalty,
                               strengths: tuple[float, float] = (1e-3, 1e-1)) -> Verdict:
    """Raising the regularization strength must raise the total loss (cs231n sanity check)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        data = float(loss_fn(model(x), y))
        model.train(was)
        low, high = (data + float(penalty(model, s)) for s in strengths)
    ok = high > low
    return Verdict("regularization raises loss", "pass" if ok else "warn", f"{low:.4g} -> {high:.4g}",
                   f"loss(lambda={strengths[1]:g}) > loss(lambda={strengths[0]:g})",
                   "" if ok else "the penalty does not grow with its strength: are the weights all zero, or is the "
                                 "penalty applied to nothing?")


def _relative_error(a: float, n: float) -> float:
    if a == 0.0 and n == 0.0:
        return 0.0
    return abs(a - n) / max(abs(a), abs(n))


def gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                   penalty: Callable[[nn.Module], torch.Tensor] | None = None, coords: int = 5, h: float = 1e-5,
                   seed: int = 0, name: str = "gradient check", n: int = 4) -> Verdict:
    """Autograd vs centred differences (f(w+h) - f(w-h)) / 2h on a float64 copy in eval mode (dropout off),
    at ``coords`` random coordinates of every parameter tensor; relative error |a - n| / max(|a|, |n|).

    cs231n thresholds: > 1e-2 wrong; 1e-4..1e-2 uncomfortable; < 1e-4 fine for nets with kinks (ReLU, max);
    <= 1e-7 good. Only ``n`` examples are used: fewer units near a kink, fewer false alarms (cs231n).
    """
    m = copy.deepcopy(model).double().eval()
    x, y = x[:n], y[:n]
    xd = x.double() if x.is_floating_point() else x
    kinks = any(isinstance(mod, _KINKS) for mod in m.modules())
    g = torch.Generator().manual_seed(seed)

    def objective() -> torch.Tensor:
        value = loss_fn(m(xd), y)
        return value + penalty(m) if penalty is not None else value

    m.zero_grad()
    objective().backward()
    worst: tuple[float, str] = (0.0, "")
    with torch.no_grad():
        for pname, p in m.named_parameters():
            if p.grad is None:
                continue
            flat, grad = p.view(-1), p.grad.view(-1)
            for idx in torch.randperm(flat.numel(), generator=g)[:coords].tolist():
                old = float(flat[idx])
                flat[idx] = old + h
                plus = float(objective())
                flat[idx] = old - h
                minus = float(objective())
                flat[idx] = old
                err = _relative_error(float(grad[idx]), (plus - minus) / (2 * h))
                if err > worst[0]:
                    worst = (err, pname)
    err, where = worst
    if err > 1e-2:
        status = "fail"
        advice = f"the backward pass of '{where}' disagrees with the numbers: check custom backward code"
    elif err > 1e-4:
        status = "warn"
        advice = ("uncomfortable; with kinks (ReLU/max) a crossing can cause this: retry with other data"
                  if kinks else f"uncomfortable for a smooth network ('{where}')")
    else:
        status, advice = "pass", ""
    quality = "good" if err <= 1e-7 else ("ok with kinks" if kinks else "ok")
    return Verdict(name, status, f"{err:.2e} ({quality})", "< 1e-4 (kinks), <= 1e-7 (smooth)", advice)


def regularization_dominance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, penalty: Callable[[nn.Module],
                             torch.Tensor], loss_fn: Callable = F.cross_entropy) -> Verdict:
    """At initialization the penalty should not dwarf the data loss (it would swamp the data gradient)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        data = float(loss_fn(model(x), y))
        model.train(was)
        reg = float(penalty(model))
    ratio = reg / max(data, 1e-12)
    status = "fail" if ratio > 10 else "warn" if ratio > 1 else "pass"
    return Verdict("regularization vs data loss", status, f"reg/data = {ratio:.3g}", "<= 1 at init",
                   "" if status == "pass" else "the penalty dominates: lower its strength")


def overfit_tiny_subset(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                        n: int = 20, steps: int = 300, lr: float = 1e-2, seed: int = 0) -> Verdict:
    """Train a copy on ~20 examples with no regularization: the loss must approach zero (a bug signal if not)."""
    torch.manual_seed(seed)
    m = copy.deepcopy(model).train()
    xs, ys = x[:n], y[:n]
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    with torch.no_grad():
        start = float(loss_fn(m(xs), ys))
    final = start
    for _ in range(steps):
        loss = loss_fn(m(xs), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        final = float(loss.detach())
        if final < 1e-2:
            break
    m.eval()
    with torch.no_grad():
        acc = float((m(xs).argmax(1) == ys).float().mean())
    ok = acc == 1.0 and final < 0.1 * max(start, 1e-12) + 1e-3
    return Verdict("overfit a tiny subset", "pass" if ok else "fail",
                   f"loss {start:.3g} -> {final:.3g}, acc {acc:.0%} on {len(xs)} examples",
                   "loss ~ 0, accuracy 100%",
                   "" if ok else "the model cannot memorize 20 examples: too little capacity (a missing "
                                 "nonlinearity?), a bug in the loss or labels, or a frozen/broken layer")


def symmetry(model: nn.Module, tol: float = 1e-8) -> Verdict:
    """Hidden units with identical incoming weights compute the same function and never differ (zero or
    constant init)."""
    weighted = [(name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    symmetric = []
    for name, m in weighted[:-1]:  # the output layer's units have different targets, so they can stay distinct
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        if w.shape[0] > 1 and torch.all((w - w[:1]).abs() <= tol):
            symmetric.append(name)
    if symmetric:
        return Verdict("symmetry", "fail", f"identical units in {', '.join(symmetric)}", "distinct hidden units",
                       "initialize weights randomly (e.g. init.scheme = 'he_normal'); zero or constant init never "
                       "breaks the symmetry")
    return Verdict("symmetry", "pass", "all hidden units distinct", "distinct hidden units")


def _activation_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable):
    """Forward std and back-propagated gradient std at every activation layer's output, in order."""
    acts: list[tuple[str, torch.Tensor]] = []

    def keep(mod, args, out, name):
        out.retain_grad()
        acts.append((name, out))

    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: keep(mod, args, out, name))
             for name, m in model.named_modules() if isinstance(m, _ACTIVATIONS) and not isinstance(m, nn.Identity)]
    was = model.training
    model.eval()
    try:
        loss_fn(model(x), y).backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
        model.zero_grad()
    return [(name, float(a.detach().std()), float(a.grad.std()) if a.grad is not None else 0.0) for name, a in acts]


def variance_propagation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                         warn_ratio: float = 0.1, fail_ratio: float = 1e-2) -> Verdict:
    """Activation std and gradient std through depth at init: collapse or explosion is a warn/fail naming the
    init to use instead (Glorot & Bengio 2010; He et al. 2015)."""
    stats = _activation_stats(model, x, y, loss_fn)
    if len(stats) < 2:
        return Verdict("variance propagation", "pass", f"{len(stats)} activation layer(s)", "-", "")
    (_, a0, g0), (_, a1, g1) = stats[0], stats[-1]
    act_ratio = a1 / max(a0, 1e-30)
    grad_ratio = g0 / max(g1, 1e-30)  # gradient at the first layer vs at the last (backward direction)
    worst = min(act_ratio, 1 / max(act_ratio, 1e-30), grad_ratio, 1 / max(grad_ratio, 1e-30))
    status = "fail" if worst < fail_ratio else "warn" if worst < warn_ratio else "pass"
    relu = any(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.modules())
    scheme = "he_normal (std sqrt(2/fan_in))" if relu else "xavier_uniform (Var 2/(fan_in+fan_out))"
    shrink = act_ratio < 1 or grad_ratio < 1
    advice = "" if status == "pass" else (
        f"signals {'vanish' if shrink else 'explode'} through depth: use init.scheme = {scheme}, or add "
        f"normalization")
    return Verdict("variance propagation", status,
                   f"activation std {a0:.3g} -> {a1:.3g} (x{act_ratio:.2g}), gradient std {g1:.3g} -> {g0:.3g} "
                   f"(x{grad_ratio:.2g}) over {len(stats)} layers", f"ratios within [{warn_ratio}, {1 / warn_ratio:g}]",
                   advice)


def input_independent_baseline(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               loss_fn: Callable = F.cross_entropy, steps: int = 50, lr: float = 1e-2,
                               n: int = 128, seed: int = 0) -> Verdict:
    """Train one copy on real inputs and one on zeroed inputs: the real one must reach a lower loss
    (Karpathy's recipe: the model must be using its input)."""
    xs, ys = x[:n], y[:n]
    results = []
    for inputs in (xs, torch.zeros_like(xs)):
        torch.manual_seed(seed)
        m = copy.deepcopy(model).train()
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        for _ in range(steps):
            loss = loss_fn(m(inputs), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            results.append(float(loss_fn(m(inputs), ys)))
    real, zero = results
    ok = real < 0.9 * zero
    return Verdict("input-independent baseline", "pass" if ok else "fail", f"real {real:.3g} vs zeroed {zero:.3g}",
                   "real inputs reach a clearly lower loss",
                   "" if ok else "the model does no better with its inputs than without: is the input connected, "
                                 "normalized, and aligned with the labels?")


def batch_independence(model: nn.Module, x: torch.Tensor, i: int = 0) -> Verdict:
    """In eval mode, sample j must not affect sample i's output: d out_i / d x_j = 0 for j != i."""
    xs = x[: min(len(x), 8)].clone().float().requires_grad_(True)
    was = model.training
    model.eval()
    try:
        model(xs)[i].sum().backward()
    finally:
        model.train(was)
        model.zero_grad()
    leak = xs.grad.reshape(len(xs), -1).abs().sum(dim=1)
    others = float(torch.cat([leak[:i], leak[i + 1 :]]).max()) if len(xs) > 1 else 0.0
    ok = others == 0.0
    return Verdict("batch independence", "pass" if ok else "fail", f"max |d out_{i} / d x_j| = {others:.3g}", "0",
                   "" if ok else "samples mix inside the batch in eval mode: a BatchNorm left in train mode, or a "
                                 "reduction over the batch axis")


def run_all(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
            weight_decay: float = 0.0, num_classes: int | None = None) -> list[Verdict]:
    """Every pre-flight check, in the lecture's order. The gradient is checked on the data loss alone, then with
    an L2 penalty (the run's weight decay, or 1e-3 if it has none)."""
    strength = weight_decay or 1e-3

    def penalty(m):
        return l2_penalty(m, strength)

    return [
        initial_loss(model, x, y, loss_fn, num_classes),
        regularization_raises_loss(model, x, y, loss_fn),
        gradient_check(model, x, y, loss_fn, name="gradient check (data loss)"),
        gradient_check(model, x, y, loss_fn, penalty=penalty, name="gradient check (data + L2)"),
        regularization_dominance(model, x, y, lambda m: l2_penalty(m, weight_decay), loss_fn),
        overfit_tiny_subset(model, x, y, loss_fn),
        symmetry(model),
        variance_propagation(model, x, y, loss_fn),
        input_independent_baseline(model, x, y, loss_fn),
        batch_independence(model, x),
    ]
