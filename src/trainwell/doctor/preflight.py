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
import functools
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


_CLASSIFY = {F.cross_entropy: "cross_entropy", F.nll_loss: "nll", F.multi_margin_loss: "hinge",
             F.binary_cross_entropy_with_logits: "bce_logits", F.mse_loss: "mse", F.l1_loss: "l1",
             F.smooth_l1_loss: "smooth_l1", F.huber_loss: "huber"}
_MODULES = ((nn.CrossEntropyLoss, "cross_entropy"), (nn.NLLLoss, "nll"), (nn.MultiMarginLoss, "hinge"),
            (nn.BCEWithLogitsLoss, "bce_logits"), (nn.MSELoss, "mse"), (nn.L1Loss, "l1"),
            (nn.SmoothL1Loss, "smooth_l1"), (nn.HuberLoss, "huber"))
_REGRESSION = ("mse", "l1", "smooth_l1", "huber", "mse_onehot")


def loss_kind(loss_fn: Callable) -> str:
    """What a loss *is*: 'cross_entropy', 'nll', 'hinge', 'bce_logits', 'mse', 'mse_onehot', 'l1', 'smooth_l1',
    'huber', or 'unknown' (a lambda or custom function: nothing can be expected of it). Recognizes
    ``torch.nn.functional`` losses, their ``nn.Module`` classes (also subclasses) and ``functools.partial``."""
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    for cls, kind in _MODULES:
        if isinstance(loss_fn, cls):
            return kind
    if getattr(loss_fn, "__name__", "") == "_mse_onehot" and "trainwell" in getattr(loss_fn, "__module__", ""):
        return "mse_onehot"
    try:
        return _CLASSIFY.get(loss_fn, "unknown")
    except TypeError:  # an unhashable callable
        return "unknown"


def _loss_name(loss_fn: Callable) -> str:
    return loss_kind(loss_fn)


def _scalar(loss: torch.Tensor) -> float:
    """A loss value as a float; a per-example loss (reduction='none') is averaged."""
    return float(loss.mean()) if loss.dim() else float(loss)


def expected_initial_loss(loss_fn: Callable, out: torch.Tensor, y: torch.Tensor) -> tuple[float, str] | None:
    """The loss an uninformative model gives, measured with the user's own loss object on uniform outputs (so
    reduction, class weights, margins and label smoothing are all accounted for), with its formula; None for an
    unknown loss.

    Classification (cs231n): uniform logits (zeros) give ln C for softmax cross-entropy, (C - 1)/C for torch's
    multiclass hinge (C - 1 when summed over classes), ln 2 for binary cross-entropy with logits; uniform
    log-probabilities (-ln C) give ln C for NLL. Regression: the loss of a zero output (a model whose outputs are
    near zero at init).
    """
    kind = loss_kind(loss_fn)
    if kind == "unknown":
        return None
    c = out.shape[1] if out.dim() > 1 else 1
    uniform = torch.full_like(out, -math.log(c)) if kind == "nll" else torch.zeros_like(out)
    with torch.no_grad():
        value = _scalar(loss_fn(uniform, y))
    formula = {"cross_entropy": f"ln C = ln {c}", "nll": f"-ln(1/C) = ln {c}",
               "hinge": f"(C-1)/C = {c - 1}/{c} (C-1 summed over classes)", "bce_logits": "ln 2 per output",
               }.get(kind, f"{kind} of a zero output")
    return value, f"{formula}, measured on uniform outputs"


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
    """Loss at initialization vs what an uninformative model gives (:func:`expected_initial_loss`): ln C for
    softmax cross-entropy, (C - 1)/C for torch's multiclass hinge, ln 2 for binary cross-entropy; a regression
    loss must not be far above that of a zero output. An unknown loss is "skipped", never a pass."""
    was = model.training
    model.eval()
    try:
        out = model(x)
        loss = _scalar(loss_fn(out, y))
    finally:
        model.train(was)
    kind = loss_kind(loss_fn)
    if not math.isfinite(loss):
        return Verdict("initial loss", "fail", loss, "a finite loss",
                       f"the loss at init is {loss}: {_suspect_layer(model, x)}; check the inputs for NaN/Inf and "
                       f"the loss for log(0)")
    if kind == "unknown":
        return Verdict("initial loss", "warn", f"skipped: unknown loss ({loss:.4g})", "no expectation for this loss",
                       "pass a torch loss (function or nn.Module) or compare by hand with a constant predictor's loss")
    expected, formula = expected_initial_loss(loss_fn, out, y)
    if num_classes and kind == "cross_entropy" and out.shape[1] != num_classes:
        formula += f" (the data has {num_classes} classes, the model {out.shape[1]} outputs)"
    ratio = loss / max(expected, 1e-12)
    if kind in _REGRESSION:  # lower than a zero output is fine; far above means large initial outputs
        status = "pass" if ratio <= 2.0 else "warn" if ratio <= 10.0 else "fail"
        expected_text = f"<= 2 x {formula} = {expected:.4f}"
    else:
        status = "pass" if 0.8 <= ratio <= 1.25 else "warn" if 0.5 <= ratio <= 2.0 else "fail"
        expected_text = f"{formula} = {expected:.4f}"
    advice = "" if status == "pass" else (
        f"initial outputs are not near-uniform: {_suspect_layer(model, x)}; shrink the last layer's init scale "
        f"or use Xavier/He init")
    return Verdict("initial loss", status, round(loss, 4), expected_text, advice)


def regularization_raises_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               loss_fn: Callable = F.cross_entropy,
                               penalty: Callable[[nn.Module, float], torch.Tensor] = l2_penalty,
                               strengths: tuple[float, float] = (1e-3, 1e-1)) -> Verdict:
    """Raising the regularization strength must raise the total loss (cs231n sanity check)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        data = _scalar(loss_fn(model(x), y))
        model.train(was)
        low, high = (data + float(penalty(model, s)) for s in strengths)
    ok = high > low
    return Verdict("regularization raises loss", "pass" if ok else "warn", f"{low:.4g} -> {high:.4g}",
                   f"loss(lambda={strengths[1]:g}) > loss(lambda={strengths[0]:g})",
                   "" if ok else "the penalty does not grow with its strength: are the weights all zero, or is the "
                                 "penalty applied to nothing?")


GRAD_ATOL = 1e-8  # below this both gradients are float64 round-off of the centred difference (|f| ~ 1, h = 1e-5)
GRAD_RTOL = 1e-4  # cs231n: a relative error < 1e-4 is fine for nets with kinks


def _relative_error(a: float, n: float) -> float:
    if a == 0.0 and n == 0.0:
        return 0.0
    return abs(a - n) / max(abs(a), abs(n))


def _quality(err: float, kinks: bool) -> str:
    """cs231n's reading of a relative error."""
    if err > 1e-2:
        return "wrong"
    if err > 1e-4:
        return "uncomfortable"
    if err > 1e-7:
        return "ok with kinks" if kinks else "ok"
    return "good"


def gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                   penalty: Callable[[nn.Module], torch.Tensor] | None = None, coords: int = 5, h: float = 1e-5,
                   seed: int = 0, name: str = "gradient check", n: int = 4, atol: float = GRAD_ATOL) -> Verdict:
    """Autograd vs centred differences (f(w+h) - f(w-h)) / 2h on a float64 copy in eval mode (dropout off),
    at ``coords`` random coordinates of every parameter tensor; relative error |a - n| / max(|a|, |n|).

    cs231n thresholds: > 1e-2 wrong; 1e-4..1e-2 uncomfortable; < 1e-4 fine for nets with kinks (ReLU, max);
    <= 1e-7 good. As in ``torch.autograd.gradcheck`` (atol + rtol), a coordinate whose gradients differ by less
    than ``atol`` agrees whatever its relative error: vanishing true gradients (1e-28 vs 0.0) are not a wrong
    backward. If every sampled gradient is below ``atol`` the verdict says "vanishing gradients". Only ``n``
    examples are used: fewer units near a kink, fewer false alarms (cs231n).
    """
    m = copy.deepcopy(model).double().eval()
    x, y = x[:n], y[:n]
    xd = x.double() if x.is_floating_point() else x
    yd = y.double() if y.is_floating_point() else y
    kinks = any(isinstance(mod, _KINKS) for mod in m.modules())
    g = torch.Generator().manual_seed(seed)

    def objective() -> torch.Tensor:
        value = loss_fn(m(xd), yd)
        value = value.mean() if value.dim() else value
        return value + penalty(m) if penalty is not None else value

    m.zero_grad()
    objective().backward()
    worst: tuple[float, str] = (0.0, "")
    checked = vanishing = 0
    largest = 0.0
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
                a, num = float(grad[idx]), (plus - minus) / (2 * h)
                checked += 1
                largest = max(largest, abs(a), abs(num))
                if max(abs(a), abs(num)) < atol:
                    vanishing += 1
                    continue
                err = 0.0 if abs(a - num) <= atol else _relative_error(a, num)
                if not math.isfinite(a) or not math.isfinite(num):
                    err = math.inf
                if err > worst[0]:
                    worst = (err, pname)
    expected = f"< 1e-4 (kinks), <= 1e-7 (smooth); |a - n| <= {atol:g} agrees"
    if checked and vanishing == checked:
        return Verdict(name, "warn", f"vanishing gradients: all {checked} sampled |grad| < {atol:g} (max "
                       f"{largest:.2g})", expected,
                       "the loss barely depends on the weights: dead or saturated units, a vanishing signal through "
                       "depth (see variance propagation) or a detached graph; the backward itself is not at fault")
    err, where = worst
    quality = _quality(err, kinks)
    if not math.isfinite(err):
        return Verdict(name, "fail", f"non-finite loss or gradient at '{where}'", expected,
                       "the objective is NaN/Inf, so no gradient can be checked: look for NaN/Inf in the inputs, "
                       "log(0) or division by zero in the loss, or overflowing weights")
    if err > 1e-2:
        status = "fail"
        advice = f"the backward pass of '{where}' disagrees with the numbers: check custom backward code"
    elif err > 1e-4:
        status = "warn"
        advice = ("uncomfortable; with kinks (ReLU/max) a crossing can cause this: retry with other data"
                  if kinks else f"uncomfortable for a smooth network ('{where}')")
    else:
        status, advice = "pass", ""
    note = f", {vanishing} of {checked} below {atol:g}" if vanishing else ""
    return Verdict(name, status, f"{err:.2e} ({quality}{note})", expected, advice)


def regularization_dominance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, penalty: Callable[[nn.Module],
                             torch.Tensor], loss_fn: Callable = F.cross_entropy) -> Verdict:
    """At initialization the penalty should not dwarf the data loss (it would swamp the data gradient)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        data = _scalar(loss_fn(model(x), y))
        model.train(was)
        reg = float(penalty(model))
    ratio = reg / max(abs(data), 1e-12)
    status = "fail" if ratio > 10 else "warn" if ratio > 1 else "pass"
    return Verdict("regularization vs data loss", status, f"reg/data = {ratio:.3g}", "<= 1 at init",
                   "" if status == "pass" else "the penalty dominates: lower its strength")


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float | None:
    """Classification accuracy when the targets are class indices (or 0/1 for one logit); None for regression."""
    if not y.is_floating_point() and out.dim() == 2 and y.dim() == 1 and out.shape[1] > 1:
        return float((out.argmax(1) == y).float().mean())
    if out.shape == y.shape and y.is_floating_point() and bool(((y == 0) | (y == 1)).all()):
        return float(((out > 0).to(y.dtype) == y).float().mean())  # binary targets with logits
    return None


def _train_copy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, steps: int, lr: float,
                seed: int, stop_below: float | None = None, every: int = 0,
                watch: Callable[[nn.Module], None] | None = None) -> tuple[nn.Module, float]:
    """Train a deep copy with full-batch Adam (the user's model and RNG untouched); returns it and the last loss.

    ``watch(copy)`` is called in eval mode (under no_grad) every ``every`` steps.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = copy.deepcopy(model).train()
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
        final = math.nan
        for i in range(steps):
            loss = loss_fn(m(x), y)
            loss = loss.mean() if loss.dim() else loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            final = float(loss.detach())
            if watch is not None and every and (i + 1) % every == 0:
                m.eval()
                with torch.no_grad():
                    watch(m)
                m.train()
            if stop_below is not None and final < stop_below or not math.isfinite(final):
                break
    return m.eval(), final


def _best_constant(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> torch.Tensor:
    """The output a model that ignores its input can at best give: one constant, fitted to ``(x, y)`` directly
    (for cross-entropy it is the log of the label prior). Costs an optimization over a handful of numbers instead
    of training a second copy of the model on zeroed inputs."""
    with torch.no_grad():
        shape = copy.deepcopy(model).eval()(x[:1]).shape[1:]
    const = torch.zeros(shape, requires_grad=True)
    opt = torch.optim.LBFGS([const], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(const.expand(len(x), *shape), y)
        loss = loss.mean() if loss.dim() else loss
        loss.backward()
        return loss

    with torch.random.fork_rng(devices=[]):
        opt.step(closure)
    return const.detach()


def overfit_tiny_subset(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                        n: int = 20, steps: int = 300, lr: float = 1e-2, seed: int = 0) -> Verdict:
    """Train a copy on ~20 examples with no regularization: the loss must approach zero (a bug signal if not)."""
    xs, ys = x[:n], y[:n]
    with torch.no_grad():
        start = _scalar(loss_fn(copy.deepcopy(model).eval()(xs), ys))
    m, final = _train_copy(model, xs, ys, loss_fn, steps, lr, seed, stop_below=1e-2)
    with torch.no_grad():
        out = m(xs)
        final = _scalar(loss_fn(out, ys))
        acc = _accuracy(out, ys)
    ok = math.isfinite(final) and (acc is None or acc == 1.0) and final < 0.1 * max(start, 1e-12) + 1e-3
    shown = f", acc {acc:.0%}" if acc is not None else ""
    return Verdict("overfit a tiny subset", "pass" if ok else "fail",
                   f"loss {start:.3g} -> {final:.3g}{shown} on {len(xs)} examples",
                   "loss ~ 0" + (", accuracy 100%" if acc is not None else " (< 10% of the start)"),
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
        loss = loss_fn(model(x), y)
        (loss.mean() if loss.dim() else loss).backward()
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
                               loss_fn: Callable = F.cross_entropy, steps: int = 100, lr: float = 1e-2,
                               n: int = 256, seed: int = 0, holdout: float = 0.25) -> Verdict:
    """Train a copy on real inputs; at its best it must reach a clearly lower loss on *held-out* examples than the
    best any input-independent model can (Karpathy's recipe: the model must be using its input).

    The input-independent model is the best constant output, fitted directly (what a copy trained on zeroed
    inputs converges to). The real copy's held-out loss is read every 10 steps and its minimum kept: a small
    subset is soon overfitted, and an overconfident model's held-out loss then climbs past the prior's although
    its inputs carry signal. Comparing training losses is not enough: a model that memorizes labels shuffled
    against the inputs uses the inputs as an address, reaches a lower training loss, and has learned nothing; on
    held-out examples it is never better than the class prior. With fewer than 16 examples nothing is held out
    and the verdict says so.
    """
    xs, ys = x[:n], y[:n]
    k = int(len(xs) * holdout) if len(xs) >= 16 else 0
    train, held = slice(0, len(xs) - k), slice(len(xs) - k, len(xs))

    def held_loss(m: nn.Module, out=None) -> float:
        return _scalar(loss_fn(m(xs[held]) if out is None else out, ys[held]))

    best_held = [math.inf]

    def watch(m: nn.Module) -> None:
        best_held[0] = min(best_held[0], held_loss(m))

    m, _ = _train_copy(model, xs[train], ys[train], loss_fn, steps, lr, seed, every=10 if k else 0,
                       watch=watch if k else None)
    const = _best_constant(model, xs[train], ys[train], loss_fn)
    with torch.no_grad():
        real_train = _scalar(loss_fn(m(xs[train]), ys[train]))
        zero_train = _scalar(loss_fn(const.expand(len(ys[train]), *const.shape), ys[train]))
        if k:
            watch(m)
            real_held = best_held[0]
            zero_held = held_loss(m, const.expand(k, *const.shape))
    fits = real_train < 0.9 * zero_train
    if not k:
        ok = fits
        value = (f"training loss: real {real_train:.3g} vs input-independent {zero_train:.3g} (too few examples to "
                 f"hold out)")
    else:
        ok = real_held < 0.9 * zero_held
        value = (f"held-out loss: real {real_held:.3g} (best over training) vs input-independent {zero_held:.3g} "
                 f"({k} examples); training loss: real {real_train:.3g} vs input-independent {zero_train:.3g}")
    if ok:
        advice = ""
    elif fits and k:
        advice = ("memorization, not signal: the inputs help on the training examples only; are the labels "
                  "aligned with the inputs (shuffled separately?), or is there too little data to generalize?")
    else:
        advice = ("the model does no better with its inputs than without: is the input connected, normalized, and "
                  "aligned with the labels?")
    return Verdict("input-independent baseline", "pass" if ok else "fail", value,
                   "real inputs reach a clearly lower held-out loss (< 0.9 x the best input-independent model)",
                   advice)


def batch_independence(model: nn.Module, x: torch.Tensor, i: int = 0) -> Verdict:
    """In eval mode, sample j must not affect sample i's output: d out_i / d x_j = 0 for j != i (for integer
    inputs such as token ids: out_i must not change when the other samples are replaced)."""
    xs = x[: min(len(x), 8)]
    was = model.training
    model.eval()
    try:
        if xs.is_floating_point():
            xs = xs.detach().clone().requires_grad_(True)
            out = model(xs)[i].sum()
            (grad,) = torch.autograd.grad(out, xs, allow_unused=True)
            leak = grad.reshape(len(xs), -1).abs().sum(dim=1) if grad is not None else torch.zeros(len(xs))
            others = float(torch.cat([leak[:i], leak[i + 1 :]]).max()) if len(xs) > 1 else 0.0
            what = f"max |d out_{i} / d x_j| = {others:.3g}"
        else:
            with torch.no_grad():
                a = model(xs)[i]
                b = model(torch.cat([xs[: i + 1], xs[i + 1 :].flip(0).roll(1, 0)]))[i]
            others = float((a - b).abs().max())
            what = f"max |out_{i} change| when the others change = {others:.3g}"
    finally:
        model.train(was)
    ok = others == 0.0
    return Verdict("batch independence", "pass" if ok else "fail", what, "0",
                   "" if ok else "samples mix inside the batch in eval mode: a BatchNorm left in train mode, or a "
                                 "reduction over the batch axis")


def run_all(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
            weight_decay: float = 0.0, num_classes: int | None = None,
            penalty: Callable[[nn.Module], torch.Tensor] | None = None) -> list[Verdict]:
    """Every pre-flight check, in the lecture's order. The gradient is checked on the data loss alone, then with
    the penalty (``penalty``, else an L2 penalty of the run's weight decay, or 1e-3 if it has none).

    Prefer :func:`trainwell.doctor.check`, which also guarantees that the user's objects are left untouched.
    """
    strength = weight_decay or 1e-3

    def l2(m):
        return l2_penalty(m, strength)

    def dominance(m):
        return penalty(m) if penalty is not None else l2_penalty(m, weight_decay)

    return [
        initial_loss(model, x, y, loss_fn, num_classes),
        regularization_raises_loss(model, x, y, loss_fn),
        gradient_check(model, x, y, loss_fn, name="gradient check (data loss)"),
        gradient_check(model, x, y, loss_fn, penalty=penalty or l2,
                       name="gradient check (data + penalty)" if penalty else "gradient check (data + L2)"),
        regularization_dominance(model, x, y, dominance, loss_fn),
        overfit_tiny_subset(model, x, y, loss_fn),
        symmetry(model),
        variance_propagation(model, x, y, loss_fn),
        input_independent_baseline(model, x, y, loss_fn),
        batch_independence(model, x),
    ]
