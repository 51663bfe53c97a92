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

from trainwell.doctor import outputs as O
from trainwell.doctor.registration import parameters_registered, unregistered_in_loss
from trainwell.doctor.verdict import Verdict
from trainwell.regularize import l2_penalty
from trainwell.train.progress import report_check

_KINKS = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Hardtanh, nn.ReLU6)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.GELU, nn.ELU, nn.Hardtanh, nn.SiLU,
                nn.Softplus, nn.Mish)
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
    scores = O.logits(out)
    if scores is None:
        return None
    if kind == "unknown":
        return _cross_entropy_like(loss_fn, out, scores, y)
    c = scores.shape[1] if scores.dim() > 1 else 1
    uniform = torch.full_like(scores, -math.log(c)) if kind == "nll" else torch.zeros_like(scores)
    with torch.no_grad():
        value = _scalar(loss_fn(O.replace_logits(out, uniform), y))
    formula = {"cross_entropy": f"ln C = ln {c}", "nll": f"-ln(1/C) = ln {c}",
               "hinge": f"(C-1)/C = {c - 1}/{c} (C-1 summed over classes)", "bce_logits": "ln 2 per output",
               }.get(kind, f"{kind} of a zero output")
    return value, f"{formula}, measured on uniform outputs"


def _cross_entropy_like(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> tuple[float, str] | None:
    """A custom loss (``lambda o, t: F.cross_entropy(o[0], t)``) recognised by what it does: on uniform logits it
    gives ln C (C the width of the class axis, 1 or last), as cross-entropy does; None otherwise."""
    if y.is_floating_point() or scores.dim() < 2:
        return None
    try:
        with torch.no_grad():
            value = _scalar(loss_fn(O.replace_logits(out, torch.zeros_like(scores)), y))
    except Exception:  # noqa: BLE001 - a loss that cannot take uniform logits is simply not recognised
        return None
    for c in dict.fromkeys((scores.shape[1], scores.shape[-1])):
        if c > 1 and abs(value - math.log(c)) <= 1e-4 * math.log(c):
            return value, f"ln C = ln {c} (your loss gives it on uniform logits: cross-entropy-like)"
    return None


def input_scale(x: torch.Tensor) -> str | None:
    """A sentence when floating-point inputs are far from unit scale (raw 0..255 pixels, unscaled features), the
    usual cause of a huge initial loss or saturated first layer; None when they are fine or not floating point."""
    if not x.is_floating_point() or x.numel() < 2:
        return None
    std, top = float(x.float().std()), float(x.float().abs().max())
    if math.isfinite(std) and (std > 5.0 or top > 50.0):
        return (f"the inputs are far from unit scale (std {std:.3g}, max |x| {top:.3g}): normalize them (e.g. "
                f"divide 0..255 pixels by 255, or standardize each feature with the training mean and std)")
    return None


def _training_forward(model: nn.Module) -> nn.Module:
    """Put ``model`` in the mode its first training step sees, minus the noise: dropout (and every other module)
    in eval mode, BatchNorm normalizing with the batch's statistics as in training (at init its running
    statistics are 0 and 1, which no training step uses). Deterministic for a given batch. Returns the model."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    return model


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
    scale = input_scale(x)
    if scale is not None:
        return scale
    rows = [(name, float(out.std() / inp.std().clamp_min(1e-12))) for name, inp, out in _outputs(model, x)
            if isinstance(out, torch.Tensor) and inp.is_floating_point() and out.numel() > 1 and inp.numel() > 1]
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
    _training_forward(model)
    try:
        out = model(x)
        loss = _scalar(loss_fn(out, y))
    finally:
        model.train(was)
    kind = loss_kind(loss_fn)
    found = expected_initial_loss(loss_fn, out, y) if math.isfinite(loss) else None
    if kind == "unknown" and found is not None:
        kind = "cross_entropy"
    if not math.isfinite(loss):
        return Verdict("initial loss", "fail", loss, "a finite loss",
                       f"the loss at init is {loss}: {_suspect_layer(model, x)}; check the inputs for NaN/Inf and "
                       f"the loss for log(0)")
    if kind == "unknown":
        return Verdict("initial loss", "skip", f"skipped: unknown loss ({loss:.4g})", "no expectation for this loss",
                       "pass a torch loss (function or nn.Module) or compare by hand with a constant predictor's loss")
    if found is None:
        return Verdict("initial loss", "skip", f"skipped: no class scores in the output {O.describe(out)} "
                       f"({loss:.4g})", "an output tensor for the loss", "")
    expected, formula = found
    width = O.logits(out).shape[1] if O.logits(out).dim() > 1 else 1
    if num_classes and kind == "cross_entropy" and width != num_classes:
        formula += f" (the data has {num_classes} classes, the model {width} outputs)"
    ratio = loss / max(expected, 1e-12)
    if kind in _REGRESSION:  # lower than a zero output is fine; far above means large initial outputs
        status = "pass" if ratio <= 2.0 else "warn" if ratio <= 10.0 else "fail"
        expected_text = f"<= 2 x {formula} = {expected:.4f}"
    else:
        status = "pass" if 0.8 <= ratio <= 1.25 else "warn" if 0.5 <= ratio <= 2.0 else "fail"
        expected_text = f"{formula} = {expected:.4f}"
    scale = input_scale(x)
    advice = "" if status == "pass" else (f"initial outputs are not near-uniform: {scale}" if scale else
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
                   seed: int = 0, name: str = "gradient check", n: int = 4, atol: float = GRAD_ATOL,
                   budget_s: float | None = None) -> Verdict:
    """Autograd vs centred differences (f(w+h) - f(w-h)) / 2h on a float64 copy in eval mode (dropout off),
    at ``coords`` random coordinates of every parameter tensor; relative error |a - n| / max(|a|, |n|).

    cs231n thresholds: > 1e-2 wrong; 1e-4..1e-2 uncomfortable; < 1e-4 fine for nets with kinks (ReLU, max);
    <= 1e-7 good. As in ``torch.autograd.gradcheck`` (atol + rtol), a coordinate whose gradients differ by less
    than ``atol`` agrees whatever its relative error: vanishing true gradients (1e-28 vs 0.0) are not a wrong
    backward. If every sampled gradient is below ``atol`` the verdict says "vanishing gradients". Only ``n``
    examples are used: fewer units near a kink, fewer false alarms (cs231n).
    """
    if not any(p.requires_grad for p in model.parameters()):
        return Verdict(name, "skip", "skipped: no trainable parameters", "-", "")
    outside = unregistered_in_loss(model, x[:n], y[:n], loss_fn)
    if outside:
        return Verdict(name, "skip", f"skipped: the loss depends on tensors outside model.parameters() "
                       f"({', '.join(outside[:3])}{', ...' if len(outside) > 3 else ''})", "-",
                       "see the check 'parameters registered'")
    m = _training_forward(copy.deepcopy(model).double())
    loss64 = _double_loss(loss_fn)
    x, y = x[:n], y[:n]
    xd = x.double() if x.is_floating_point() else x
    yd = y.double() if y.is_floating_point() else y
    kinks = any(isinstance(mod, _KINKS) for mod in m.modules())
    g = torch.Generator().manual_seed(seed)

    def objective() -> torch.Tensor:
        value = loss64(m(xd), yd)
        value = value.mean() if value.dim() else value
        return value + penalty(m) if penalty is not None else value

    m.zero_grad()
    centre = objective()
    centre.backward()
    f0 = float(centre.detach())
    worst: tuple[float, str] = (0.0, "")
    checked = vanishing = crossings = 0
    largest = 0.0
    tensors = [(pname, p) for pname, p in m.named_parameters() if p.grad is not None]
    tensors, per_tensor, budget_note = _within_budget(tensors, coords, objective, budget_s)
    with torch.no_grad():
        for pname, p in tensors:
            flat, grad = p.view(-1), p.grad.view(-1)
            for idx in torch.randperm(flat.numel(), generator=g)[:per_tensor].tolist():
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
                elif err > 1e-4 and abs((plus - f0) - (f0 - minus)) / h > 0.1 * abs(a - num):
                    # the one-sided slopes differ: a kink (ReLU, max) lies inside [w - h, w + h], so the centred
                    # difference averages two slopes; a wrong backward pass shows no such jump
                    crossings += 1
                    continue
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
    note += f", {crossings} kink crossing{'s' if crossings != 1 else ''} skipped" if crossings else ""
    note += budget_note
    return Verdict(name, status, f"{err:.2e} ({quality}{note})", expected, advice)


#: seconds a costly check may take on a large model before it samples less (a ResNet-18 on a 2-core CPU: a float64
#: forward of 4 images takes ~0.2 s, so every tensor at 5 coordinates would take minutes)
TIME_BUDGET_S = 10.0


def _within_budget(tensors: list, coords: int, objective: Callable, budget_s: float | None):
    """(tensors, coordinates per tensor, note) that fit the time budget: one objective is timed; each coordinate
    costs two. Fewer coordinates per tensor first (down to 1), then tensors evenly spread over depth (the first
    and last always), and the value says so."""
    import time

    budget = TIME_BUDGET_S if budget_s is None else budget_s
    tic = time.perf_counter()
    with torch.no_grad():
        objective()
    evals = max(int(budget / max(time.perf_counter() - tic, 1e-6)), 2)
    if 2 * coords * len(tensors) <= evals:
        return tensors, coords, ""
    per = max(1, evals // (2 * max(len(tensors), 1)))
    if 2 * per * len(tensors) <= evals:
        return tensors, per, f"; {per} coordinate(s) per tensor to fit {budget:g} s"
    keep = max(2, evals // 2)
    idx = sorted({round(i * (len(tensors) - 1) / (keep - 1)) for i in range(keep)}) if keep < len(tensors) else \
        list(range(len(tensors)))
    note = f"; {len(idx)} of {len(tensors)} tensors (spread over depth) to fit {budget:g} s"
    return [tensors[i] for i in idx], 1, note


def _double_loss(loss_fn: Callable) -> Callable:
    """The loss for a float64 copy of the model: an ``nn.Module`` loss's buffers (class weights) and a partial's
    tensor arguments converted too (else ``expected scalar type Double but found Float``)."""
    if isinstance(loss_fn, nn.Module):
        return copy.deepcopy(loss_fn).double()
    if isinstance(loss_fn, functools.partial):
        def conv(v):
            return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v

        return functools.partial(_double_loss(loss_fn.func), *map(conv, loss_fn.args),
                                 **{k: conv(v) for k, v in loss_fn.keywords.items()})
    return loss_fn


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


def _accuracy(out, y: torch.Tensor) -> float | None:
    """Classification accuracy when the targets are class indices (or 0/1 for one logit); None for regression.
    ``out`` may be any output structure (its logits are used); targets outside [0, C) (``ignore_index``) are not
    counted; (B, T, C) scores with (B, T) targets are read per position."""
    out = O.logits(out)
    if out is None:
        return None
    if not y.is_floating_point() and out.dim() >= 2 and out.shape[-1] > 1 and (
            out.dim() == 2 and y.dim() == 1 or out.shape[:-1] == y.shape):
        pred = out.argmax(-1)
        keep = (y >= 0) & (y < out.shape[-1])
        return float((pred == y)[keep].float().mean()) if bool(keep.any()) else None
    if out.shape == y.shape and y.is_floating_point() and bool(((y == 0) | (y == 1)).all()):
        return float(((out > 0).to(y.dtype) == y).float().mean())  # binary targets with logits
    return None


def _train_copy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, steps: int, lr: float,
                seed: int, stop_below: float | None = None, every: int = 0,
                watch: Callable[[nn.Module], None] | None = None) -> tuple[nn.Module, float]:
    """Train a deep copy with full-batch Adam (the user's model and RNG untouched); returns it and the last loss.

    ``watch(copy)`` is called (under no_grad) every ``every`` steps, with dropout off and BatchNorm on batch
    statistics (:func:`_training_forward`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = copy.deepcopy(model).train()
        trainable = [p for p in m.parameters() if p.requires_grad]
        if not trainable:
            return m.eval(), math.nan
        opt = torch.optim.Adam(trainable, lr=lr)
        final = math.nan
        for i in range(steps):
            loss = loss_fn(m(x), y)
            loss = loss.mean() if loss.dim() else loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            final = float(loss.detach())
            if watch is not None and every and (i + 1) % every == 0:
                _training_forward(m)  # BatchNorm's running statistics lag far behind after a few steps
                with torch.no_grad():
                    watch(m)
                m.train()
            if stop_below is not None and final < stop_below or not math.isfinite(final):
                break
    return m.eval(), final


def _affordable_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, steps: int,
                     floor: int = 30) -> int:
    """Training steps of a copy that fit :data:`TIME_BUDGET_S` (one forward and backward is timed), at least
    ``floor``, at most ``steps``."""
    import time

    with torch.random.fork_rng(devices=[]):
        m = copy.deepcopy(model).train()
        tic = time.perf_counter()
        loss = loss_fn(m(x), y)
        (loss.mean() if loss.dim() else loss).backward()
        took = time.perf_counter() - tic
    return max(min(steps, int(TIME_BUDGET_S / max(took, 1e-6))), min(floor, steps))


def _free_outputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, per_example: bool,
                  max_iter: int = 100) -> Callable[[int], object]:
    """Outputs fitted to ``(x, y)`` directly, with the model's output structure, by L-BFGS on the user's loss:
    one constant per output tensor (``per_example=False``: the best any input-independent model can do; for
    cross-entropy the log of the label prior), or a free output per example (``True``: the lowest loss any model
    can reach, e.g. the smoothed targets' entropy under label smoothing). Returns ``build(n)`` -> an output for
    ``n`` examples (only ``n = len(x)`` when per example)."""
    with torch.no_grad():
        sample = copy.deepcopy(model).eval()(x if per_example else x[:1])
    floats = [t for t in O.leaves(sample) if t.is_floating_point()]
    free = [torch.zeros(t.shape if per_example else t.shape[1:], dtype=t.dtype, device=t.device,
                        requires_grad=True) for t in floats]
    # outputs that are log-probabilities or probabilities (a LogSoftmax/Softmax last layer) stay normalized: NLL of
    # free numbers has no minimum
    norm = [_normalization(t) for t in floats]

    def build(n: int):
        it, kinds = iter(free), iter(norm)

        def make(t):
            v, kind = next(it), next(kinds)
            v = v if per_example else v.expand(n, *t.shape[1:])
            return v.log_softmax(1) if kind == "log" else v.softmax(1) if kind == "prob" else v

        return O.map_tensors(sample, make)

    opt = torch.optim.LBFGS(free, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(build(len(x)), y)
        loss = loss.mean() if loss.dim() else loss
        loss.backward()
        return loss

    with torch.random.fork_rng(devices=[]):
        opt.step(closure)
    for t in free:
        t.requires_grad_(False)
    return build


def _normalization(t: torch.Tensor) -> str | None:
    """'log' if every row of ``t`` is a log-probability vector over dim 1, 'prob' if a probability vector."""
    if t.dim() < 2 or t.shape[1] < 2:
        return None
    if bool((t <= 1e-6).all()) and bool((t.logsumexp(1).abs() < 1e-4).all()):
        return "log"
    if bool((t >= 0).all()) and bool(((t.sum(1) - 1).abs() < 1e-4).all()):
        return "prob"
    return None


def overfit_tiny_subset(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                        n: int = 20, steps: int = 300, lr: float = 1e-2, seed: int = 0) -> Verdict:
    """Train a copy on ~20 examples with no regularization: the loss must approach its floor (a bug signal if not).

    The floor is the lowest loss any outputs can reach on these examples, fitted directly (0 for plain
    cross-entropy; the smoothed targets' entropy with label smoothing): the loss must close 90% of the gap from
    its start to the floor. The trained copy is judged in eval mode and in train mode (seeded), the better of the
    two: with BatchNorm on 20 examples the running statistics lag the batch statistics the copy was fitted with."""
    name = "overfit a tiny subset"
    xs, ys = x[:n], y[:n]
    if not any(p.requires_grad for p in model.parameters()):
        return Verdict(name, "skip", "skipped: no trainable parameters", "-", "")
    with torch.no_grad():
        start = _scalar(loss_fn(copy.deepcopy(model).eval()(xs), ys))
    floor = _scalar(loss_fn(_free_outputs(model, xs, ys, loss_fn, per_example=True)(len(xs)), ys))
    floor = floor if math.isfinite(floor) and floor > 0 else 0.0
    m, final = _train_copy(model, xs, ys, loss_fn, steps, lr, seed, stop_below=floor + 1e-2)
    candidates = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for mode in (False, True):
            torch.manual_seed(seed)
            out = m.train(mode)(xs)
            candidates.append((_scalar(loss_fn(out, ys)), _accuracy(out, ys)))
    m.eval()
    finite = [c for c in candidates if math.isfinite(c[0])]
    final, acc = min(finite, key=lambda c: (-(c[1] or 0.0), c[0])) if finite else candidates[0]
    ok = math.isfinite(final) and (acc is None or acc == 1.0) and \
        final - floor < 0.1 * max(start - floor, 1e-12) + 1e-3
    shown = f", acc {acc:.0%}" if acc is not None else ""
    floor_text = f" (floor {floor:.3g}: the lowest loss any outputs reach)" if floor > 1e-3 else ""
    return Verdict(name, "pass" if ok else "fail",
                   f"loss {start:.3g} -> {final:.3g}{shown} on {len(xs)} examples{floor_text}",
                   ("loss ~ 0" if floor <= 1e-3 else "loss near its floor") +
                   (", accuracy 100%" if acc is not None else " (< 10% of the start)"),
                   "" if ok else "the model cannot memorize 20 examples: too little capacity (a missing "
                                 "nonlinearity?), a bug in the loss or labels, or a frozen/broken layer")


def symmetry(model: nn.Module, tol: float = 1e-8) -> Verdict:
    """Hidden units with identical incoming weights compute the same function and never differ (zero or
    constant init). Every weight matrix or filter bank (Linear, Conv, recurrent, attention, embeddings) but the
    last one is read: its rows are the units."""
    weights = [(name, p) for name, p in model.named_parameters() if p.dim() >= 2 and p.shape[0] > 1]
    if len(weights) < 2:
        return Verdict("symmetry", "skip", f"skipped: {len(weights)} weight matrix(es); a single layer's output "
                       "units have different targets", "distinct hidden units", "")
    symmetric = []
    for name, p in weights[:-1]:  # the output layer's units have different targets, so they can stay distinct
        w = p.detach().reshape(p.shape[0], -1)
        if torch.all((w - w[:1]).abs() <= tol):
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
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return
        if out.requires_grad:  # not below a frozen part of the model
            out.retain_grad()
        acts.append((name, out))

    watched = [(name, m) for name, m in model.named_modules()
               if isinstance(m, _ACTIVATIONS) and not isinstance(m, nn.Identity)]
    if len(watched) < 2:  # activations applied as functions (F.relu): read the weighted layers' outputs instead
        watched = [(name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: keep(mod, args, out, name))
             for name, m in watched]
    was = model.training
    _training_forward(model)
    try:
        out = model(x)
        loss = loss_fn(out, y)
        (loss.mean() if loss.dim() else loss).backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
        model.zero_grad()
    # the model's outputs are not hidden layers: the gradient at the logits is the loss's, not back-propagated
    final = {id(t) for t in O.leaves(out)}
    return [(name, float(a.detach().float().std()), float(a.grad.std()) if a.grad is not None else None)
            for name, a in acts if a.numel() > 1 and id(a) not in final]


def variance_propagation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                         warn_ratio: float = 0.1, fail_ratio: float = 1e-2) -> Verdict:
    """Activation std and gradient std through depth at init: collapse or explosion is a warn/fail naming the
    init to use instead (Glorot & Bengio 2010; He et al. 2015)."""
    stats = _activation_stats(model, x, y, loss_fn)
    if len(stats) < 2:
        return Verdict("variance propagation", "skip", f"skipped: {len(stats)} activation or weighted layer(s) to "
                       "compare", "-", "")
    (_, a0, _), (_, a1, _) = stats[0], stats[-1]
    graded = [s for s in stats if s[2] is not None]  # layers below frozen parameters get no gradient: not read
    g0, g1 = (graded[0][2], graded[-1][2]) if len(graded) >= 2 else (1.0, 1.0)
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
    inputs converges to). The real copy's held-out loss is read every 5 steps and the best kept (with its
    accuracy): a small subset is soon overfitted, and an overconfident model's held-out loss then climbs past the
    prior's although its inputs carry signal. A model that fits its training examples better with its inputs but
    shows no clear held-out gain is a warning, not a failure: memorization and too few examples to show
    generalization (an MLP on 192 MNIST-1D examples) look the same on a few dozen held-out examples. Comparing
    training losses is not enough: a model that memorizes labels shuffled
    against the inputs uses the inputs as an address, reaches a lower training loss, and has learned nothing; on
    held-out examples it is never better than the class prior. With fewer than 16 examples nothing is held out
    and the verdict says so.
    """
    xs, ys = x[:n], y[:n]
    if not any(p.requires_grad for p in model.parameters()):
        return Verdict("input-independent baseline", "skip", "skipped: no trainable parameters", "-", "")
    k = int(len(xs) * holdout) if len(xs) >= 16 else 0
    train, held = slice(0, len(xs) - k), slice(len(xs) - k, len(xs))

    def held_out(m: nn.Module, out=None) -> tuple[float, float | None]:
        out = m(xs[held]) if out is None else out
        return _scalar(loss_fn(out, ys[held])), _accuracy(out, ys[held])

    best = {"loss": math.inf, "acc": None}

    def watch(m: nn.Module) -> None:  # the checkpoint with the best held-out loss, and its accuracy
        loss, acc = held_out(m)
        if loss < best["loss"]:
            best["loss"], best["acc"] = loss, acc

    steps = _affordable_steps(model, xs[train], ys[train], loss_fn, steps)
    m, _ = _train_copy(model, xs[train], ys[train], loss_fn, steps, lr, seed, every=5 if k else 0,
                       watch=watch if k else None)
    const = _free_outputs(model, xs[train], ys[train], loss_fn, per_example=False)
    _training_forward(m)
    with torch.no_grad():
        real_train = _scalar(loss_fn(m(xs[train]), ys[train]))
        zero_train = _scalar(loss_fn(const(len(ys[train])), ys[train]))
        if k:
            watch(m)
            zero_held, zero_acc = held_out(m, const(k))
    fits = real_train < 0.9 * zero_train
    if not k:
        ok = fits
        value = (f"training loss: real {real_train:.3g} vs input-independent {zero_train:.3g} (too few examples to "
                 f"hold out)")
    else:
        ok = best["loss"] < 0.9 * zero_held
        value = (f"held-out loss: real {best['loss']:.3g} (best over training) vs input-independent {zero_held:.3g}"
                 f" ({k} examples)")
        if zero_acc is not None and best["acc"] is not None:
            # an overconfident classifier's loss can stay near the prior's while it classifies far better than the
            # prior: held-out accuracy (at the best-loss checkpoint, not the best of many) above the constant's by
            # three binomial standard errors also counts as signal
            margin = 3 * math.sqrt(max(zero_acc * (1 - zero_acc), 0.05) / k)
            ok = ok or best["acc"] > zero_acc + margin
            value += f"; held-out accuracy there: real {best['acc']:.1%} vs input-independent {zero_acc:.1%}"
        value += f"; training loss: real {real_train:.3g} vs input-independent {zero_train:.3g}"
    if ok:
        advice = ""
    elif fits and k:
        advice = ("memorization, or too few examples to show signal: the inputs help on the training examples "
                  "only; are the labels aligned with the inputs (shuffled separately?), or is there too little data "
                  "to generalize?")
    else:
        advice = ("the model does no better with its inputs than without: is the input connected, normalized, and "
                  "aligned with the labels?")
    status = "pass" if ok else ("warn" if fits and k else "fail")
    return Verdict("input-independent baseline", status, value,
                   "real inputs reach a clearly lower held-out loss (< 0.9 x the best input-independent model) or a "
                   "clearly higher held-out accuracy (by 3 standard errors)",
                   advice)


def batch_independence(model: nn.Module, x: torch.Tensor, i: int = 0) -> Verdict:
    """In eval mode, sample j must not affect sample i's output: d out_i / d x_j = 0 for j != i (for integer
    inputs such as token ids: out_i must not change when the other samples are replaced)."""
    xs = x[: min(len(x), 8)]
    was = model.training
    model.eval()
    try:
        if O.logits(model(xs[:2])) is None:
            return Verdict("batch independence", "skip", "skipped: no output tensor to compare", "0", "")
        if xs.is_floating_point():
            xs = xs.detach().clone().requires_grad_(True)
            out = O.logits(model(xs))[i].sum()
            (grad,) = torch.autograd.grad(out, xs, allow_unused=True)
            leak = grad.reshape(len(xs), -1).abs().sum(dim=1) if grad is not None else torch.zeros(len(xs))
            others = float(torch.cat([leak[:i], leak[i + 1 :]]).max()) if len(xs) > 1 else 0.0
            what = f"max |d out_{i} / d x_j| = {others:.3g}"
        else:
            with torch.no_grad():
                a = O.logits(model(xs))[i]
                b = O.logits(model(torch.cat([xs[: i + 1], xs[i + 1 :].flip(0).roll(1, 0)])))[i]
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

    with_penalty = "gradient check (data + penalty)" if penalty else "gradient check (data + L2)"
    checks = [
        ("parameters registered", lambda: parameters_registered(model, x, y, loss_fn)),
        ("initial loss", lambda: initial_loss(model, x, y, loss_fn, num_classes)),
        ("regularization raises loss", lambda: regularization_raises_loss(model, x, y, loss_fn)),
        ("gradient check (data loss)", lambda: gradient_check(model, x, y, loss_fn, name="gradient check (data loss)")),
        (with_penalty, lambda: gradient_check(model, x, y, loss_fn, penalty=penalty or l2, name=with_penalty)),
        ("regularization vs data loss", lambda: regularization_dominance(model, x, y, dominance, loss_fn)),
        ("overfit a tiny subset", lambda: overfit_tiny_subset(model, x, y, loss_fn)),
        ("symmetry", lambda: symmetry(model)),
        ("variance propagation", lambda: variance_propagation(model, x, y, loss_fn)),
        ("input-independent baseline", lambda: input_independent_baseline(model, x, y, loss_fn)),
        ("batch independence", lambda: batch_independence(model, x)),
    ]
    verdicts = []
    for n, (name, run) in enumerate(checks, 1):
        report_check(n, len(checks), name)  # "(n of m)" on stderr while a fit runs its pre-flight
        verdicts.append(guarded(name, run))
    return verdicts


def guarded(name: str, run: Callable[[], Verdict]) -> Verdict:
    """Run one check; an exception from inside it becomes a 'skip' verdict that names it (the doctor never raises
    on a model a user trains). Interrupts still propagate."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - every failure of a check is reported as that check's verdict
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Verdict(name, "skip", f"skipped: the check could not run on this model ({type(e).__name__}: "
                       f"{text[:200]})", "-", "a doctor limitation on this model, not a verdict on it")
