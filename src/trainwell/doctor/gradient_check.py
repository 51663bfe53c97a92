"""Pre-flight check: autograd against centred differences on a float64 copy (cs231n's gradient check)."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from trainwell.doctor import checkpointing
from trainwell.doctor.budget import _within_budget
from trainwell.doctor.exact_kinks import on_kink
from trainwell.doctor.forward import _KINKS, _training_forward
from trainwell.doctor.gradient_subset import informative_subset
from trainwell.doctor.inputs import Inputs, Targets, call, cast
from trainwell.doctor.registration import unregistered_in_loss
from trainwell.doctor.stop_gradients import HELD_NOTE, held_stop_gradients
from trainwell.doctor.surrogate import STEP_ADVICE, flat, steps
from trainwell.doctor.untracked_terms import custom_backward_in, untracked_advice
from trainwell.doctor.verdict import Verdict

GRAD_ATOL = 1e-8  # below this both gradients are float64 round-off of the centred difference (|f| ~ 1, h = 1e-5)


LARGE_LOSS = 1e4  # a loss above this costs the centred difference digits: a failure says so


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


def gradient_check(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                   penalty: Callable[[nn.Module], torch.Tensor] | None = None, coords: int = 5, h: float = 1e-5,
                   seed: int = 0, name: str = "gradient check", n: int = 4, atol: float = GRAD_ATOL,
                   budget_s: float | None = None, memo: dict | None = None) -> Verdict:
    """Autograd vs centred differences (f(w+h) - f(w-h)) / 2h on a float64 copy in eval mode (dropout off),
    at ``coords`` random coordinates of every parameter tensor; relative error |a - n| / max(|a|, |n|).

    cs231n thresholds: > 1e-2 wrong; 1e-4..1e-2 uncomfortable; < 1e-4 fine for nets with kinks (ReLU, max);
    <= 1e-7 good. As in ``torch.autograd.gradcheck`` (atol + rtol), a coordinate whose gradients differ by less
    than ``atol`` agrees whatever its relative error: vanishing true gradients (1e-28 vs 0.0) are not a wrong
    backward. If every sampled gradient is below ``atol`` the verdict says "vanishing gradients". Only ``n``
    examples are used: fewer units near a kink, fewer false alarms (cs231n).

    The round-off of a centred difference grows with the loss itself (float64 keeps ~16 digits of f(w + h) and
    f(w - h), so about eps |f| / h of the slope is noise): ``atol`` holds for a loss up to 1 and is scaled by |f|
    above (a loss of 4e10 - regression targets in raw units - resolves no slope below ~1), so the verdict does
    not change when the loss is multiplied by a constant, and round-off is not mistaken for a wrong backward.
    Only floating-point inputs are cast to float64 (integer ids and boolean masks stay as they are).

    ``memo``: a dict shared by the gradient checks of one model, batch and loss (the pre-flight's data-loss check
    and its L2 check): each data-loss value at a perturbed coordinate is computed once, and ``penalty`` is added to
    it, so ``penalty`` must then be a function of the weights alone (an L2 penalty, not an activity penalty, which
    reads the forward). The sums are the ones the objective computes, so the verdicts are the same.
    """
    if not any(p.requires_grad for p in model.parameters()):
        return Verdict(name, "skip", "skipped: no trainable parameters", "-", "")
    outside = unregistered_in_loss(model, x[:n], y[:n], loss_fn)
    if outside:
        return Verdict(name, "skip", f"skipped: the loss depends on tensors outside model.parameters() "
                       f"({', '.join(outside[:3])}{', ...' if len(outside) > 3 else ''})", "-",
                       "see the check 'parameters registered'")
    m = _training_forward(copy.deepcopy(model).double())
    xd = cast(x, torch.Tensor.double)
    yd = y.map(lambda t: t.double() if t.is_floating_point() else t) if isinstance(y, Targets) else \
        y.double() if y.is_floating_point() else y

    def data_loss(index: torch.Tensor, xs=xd, ys=yd) -> torch.Tensor:
        with _FloatToDouble(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            value = loss_fn(call(m, xs[index]), ys[index])
            return value.mean() if value.dim() else value

    subset = informative_subset(m, data_loss, y, n, len(y))
    if subset.zero and penalty is None:
        return Verdict(name, "skip", f"skipped: the data loss is exactly 0 on all {len(y)} examples given: no "
                       "gradient to check", "-", "a loss that is 0 on every example (a margin every example meets, "
                       "no mined pair) has no gradient: check it on a batch where it is not")
    xd, yd = xd[subset.index], yd[subset.index]
    kinks = any(isinstance(mod, _KINKS) for mod in m.modules())
    g = torch.Generator().manual_seed(seed)

    def evaluate(penalized: bool = True) -> torch.Tensor:
        with _FloatToDouble():  # float32 tensors the loss or penalty holds itself meet the float64 copy's
            value = loss_fn(call(m, xd), yd)
            value = value.mean() if value.dim() else value
            return value + penalty(m) if penalty is not None and penalized else value

    with torch.no_grad(), _TrainingDropout() as dropout:  # differences need a forward that is a function of w
        first, again = float(evaluate()), float(evaluate())
    random = first != again and not (math.isnan(first) and math.isnan(again))
    devices = sorted({p.device.index or 0 for p in m.parameters() if p.is_cuda})

    def objective(penalized: bool = True) -> torch.Tensor:
        if not random:
            return evaluate(penalized)
        with torch.random.fork_rng(devices=devices):  # the same noise on every evaluation: a function of w
            torch.manual_seed(seed)
            return evaluate(penalized)

    data = functools.partial(objective, False) if penalty is not None else None
    value = None if memo is None else _remembered(memo, (tuple(subset.index.tolist()), seed, random),
                                                  functools.partial(objective, False), m, penalty)
    verdict = _checked(name, m, objective, coords, budget_s, atol, g, kinks, h, data, value=value)
    if subset.note:
        verdict.value = f"{verdict.value}; {subset.note}"
    if not random:
        return verdict
    noise = f"the loss differs between two eval-mode forwards of the same batch ({first:.6g} vs {again:.6g})"
    advice = ("a random operation stays on in eval mode: F.dropout(x, p) without training=self.training (or use "
              "nn.Dropout), or noise drawn in forward, which makes test-time predictions random; fine only by design "
              "(MC dropout, a VAE's sampling)")
    if dropout.called and verdict.status == "pass":  # F.dropout(x, p) in forward: its default is training=True
        return Verdict(name, "warn", f"{verdict.value} with the noise held fixed; {noise}: F.{dropout.called} runs "
                       "with training=True in eval mode", verdict.expected, "pass training=self.training to "
                       f"F.{dropout.called} (or use the nn.Dropout module), else test-time predictions are random; "
                       "only MC dropout keeps it on by design")
    if verdict.status == "pass":  # the gradients are right; noise drawn in forward is a design (a VAE's sample)
        return Verdict(name, "info", f"{verdict.value} with the noise held fixed; {noise}", verdict.expected,
                       "noise drawn in forward stays on in eval mode: test-time predictions are random, as a VAE's "
                       "sampling (Kingma & Welling 2014) or MC dropout intends; otherwise draw it only when "
                       "self.training")
    return Verdict(name, verdict.status, f"{verdict.value}; {noise}", verdict.expected, f"{advice}; {verdict.advice}")


def _remembered(memo: dict, batch: tuple, data: Callable[[], torch.Tensor], m: nn.Module,
                penalty: Callable[[nn.Module], torch.Tensor] | None) -> Callable[[tuple], torch.Tensor]:
    """The objective at a perturbed coordinate ``(tensor name, flat index, value)`` of ``m``: the data loss there
    from ``memo`` (computed and kept on first use; ``batch`` names the examples and their noise), plus
    ``penalty(m)``."""

    def value(at: tuple) -> torch.Tensor:
        key = (batch, *at)
        if key not in memo:
            memo[key] = data()
        if penalty is None:
            return memo[key]
        with _FloatToDouble():
            return memo[key] + penalty(m)

    return value


def _checked(name: str, m: nn.Module, objective: Callable[[], torch.Tensor], coords: int, budget_s: float | None,
             atol: float, g: torch.Generator, kinks: bool, h: float,
             data: Callable[[], torch.Tensor] | None = None, held: bool = False,
             value: Callable[[tuple], torch.Tensor] | None = None) -> Verdict:
    """Autograd's gradient of ``objective`` on the float64 copy ``m`` against centred differences of step ``h``
    (``data``: the data loss alone, when ``objective`` adds a penalty). A disagreement with no custom backward in
    the graph is checked again with the loss's detached tensors held at their values (``held``: this is that
    check), :mod:`~trainwell.doctor.stop_gradients`; ``value``: the objective at a perturbed coordinate,
    :func:`_remembered`)."""
    m.zero_grad()
    with checkpointing.reentrant_without_grad() as seen, _LookedUp(m) as looked:
        centre = objective()
    centre.backward()
    tensors = [(pname, p) for pname, p in m.named_parameters() if p.grad is not None]
    tensors, per_tensor, budget_note = _within_budget(tensors, coords, objective, budget_s)
    f0 = float(centre.detach())
    floor = atol * max(1.0, abs(f0)) if math.isfinite(f0) else atol
    padding_rows = {f"{n}.weight" if n else "weight": int(mod.padding_idx) % mod.num_embeddings
                    for n, mod in m.named_modules() if isinstance(mod, nn.Embedding) and mod.padding_idx is not None}
    found = _compare(tensors, per_tensor, objective, f0, h, atol, g, floor, padding_rows, data, looked.rows, value)
    verdict = _grade(name, found, atol, kinks, budget_note, f0, floor)
    if seen.cut and verdict.status == "fail":  # autograd left out a checkpointed segment: no custom backward at fault
        verdict.advice = f"autograd gives '{found.worst[1]}' no gradient from the data loss: {checkpointing.ADVICE}"
    elif verdict.status == "fail" and found.worst[1] and not found.flat and abs(f0) <= LARGE_LOSS and \
            not custom_backward_in(centre):  # autograd's own derivatives are right: a term it does not see
        stopped = None if held else held_stop_gradients(objective)
        if stopped is not None:  # detached on purpose? the differences with those tensors held as autograd holds them
            again = _checked(name, m, stopped, coords, budget_s, atol, torch.Generator().manual_seed(0), kinks, h,
                             None if data is None else held_stop_gradients(data), held=True)
            if again.status == "pass":
                again.value = f"{again.value}; {HELD_NOTE}"
                return again
        verdict.advice = untracked_advice(found.worst[1])
    return verdict


@dataclass
class _Comparison:
    """What the sampled coordinates showed: the worst relative error and where, how many coordinates were
    checked, how many had vanishing gradients, how many straddled a kink (``noise``: of those, how many with
    autograd's gradient vanishing too: a difference that jumped by the loss's round-off), the largest gradient
    seen, the disagreements where the data loss is flat ((error, tensor) each) and whether it moved under a
    larger step at one of them (a piecewise-constant forward)."""

    worst: tuple[float, str] = (0.0, "")
    checked: int = 0
    vanishing: int = 0
    crossings: int = 0
    noise: int = 0
    largest: float = 0.0
    flat: list = field(default_factory=list)
    stepped: bool = False


@torch.no_grad()
def _compare(tensors: list, per_tensor: int, objective: Callable[[], torch.Tensor], f0: float, h: float,
             atol: float, g: torch.Generator, floor: float | None = None,
             padding_rows: dict[str, int] | None = None, data: Callable[[], torch.Tensor] | None = None,
             rows: dict[str, torch.Tensor] | None = None,
             value: Callable[[tuple], torch.Tensor] | None = None) -> _Comparison:
    """Autograd's ``.grad`` against the centred difference at ``per_tensor`` random coordinates of each tensor
    (in the tensor's logical order, whatever its memory layout: channels_last weights too). Gradients below
    ``atol`` are vanishing; two that differ by at most ``floor`` (default ``atol``) agree. An embedding's
    ``padding_idx`` row (``padding_rows``: tensor name -> row) gets no gradient by design and is not sampled, nor
    are the rows of an embedding table that the examples did not look up (``rows``: tensor name -> the looked-up
    rows): of a table of users or items, a few examples touch a few rows, and the others get no gradient.
    A disagreement where the data loss (``data``, default ``objective``) is flat is set apart (see
    :mod:`~trainwell.doctor.surrogate`). ``value((name, index, w))``, when given, is the objective with
    that coordinate at ``w`` (:func:`_remembered`)."""
    floor = atol if floor is None else floor
    data = objective if data is None else data
    found = _Comparison()
    for pname, p in tensors:
        pad = (padding_rows or {}).get(pname)
        for idx in _sampled(p, (rows or {}).get(pname), per_tensor, g):
            at = _position(idx, p.shape)
            if pad is not None and at[0] == pad:
                continue
            old = float(p[at])
            p[at] = old + h
            plus = float(objective() if value is None else value((pname, idx, float(p[at]))))
            p[at] = old - h
            minus = float(objective() if value is None else value((pname, idx, float(p[at]))))
            p[at] = old
            a, num = float(p.grad[at]), (plus - minus) / (2 * h)
            found.checked += 1
            found.largest = max(found.largest, abs(a), abs(num))
            if max(abs(a), abs(num)) < atol:
                found.vanishing += 1
                continue
            err = 0.0 if abs(a - num) <= floor else _relative_error(a, num)
            if not math.isfinite(a) or not math.isfinite(num):
                err = math.inf
            elif err > 1e-4 and flat(data, p, at, h, (plus, minus) if data is objective else None):
                found.flat.append((err, pname))  # the data loss does not move: a step function, or no dependence
                found.stepped = found.stepped or steps(data, p, at)
                continue
            elif err > 1e-4 and (abs((plus - f0) - (f0 - minus)) / h > 0.1 * abs(a - num) or
                                 on_kink(objective, p, at, h, floor)):
                # the one-sided slopes differ: a kink (ReLU, max) lies inside [w - h, w + h], so the centred
                # difference averages two slopes; a wrong backward pass shows no such jump (nor agreement a few
                # h off a point that sits exactly on kinks: a zero-initialized gamma of a residual branch)
                found.crossings += 1
                found.noise += abs(a) < atol  # autograd's gradient vanishes; the difference jumped by round-off
                continue
            if err > found.worst[0]:
                found.worst = (err, pname)
    return found


def _sampled(p: torch.Tensor, rows: torch.Tensor | None, k: int, g: torch.Generator) -> list[int]:
    """``k`` random flat indices of ``p``, within ``rows`` (the first axis's entries) when given."""
    if rows is None or p.dim() < 1 or len(p) == 0:
        return torch.randperm(p.numel(), generator=g)[:k].tolist()
    width = p.numel() // len(p)
    inside = (rows[:, None] * width + torch.arange(width)).reshape(-1)
    return inside[torch.randperm(len(inside), generator=g)[:k]].tolist()


class _LookedUp:
    """The rows of each ``nn.Embedding`` / ``nn.EmbeddingBag`` weight of ``model`` that the forwards run inside
    this context look up (``rows``: the weight's parameter name -> its sorted row ids)."""

    def __init__(self, model: nn.Module):
        self.model, self.rows, self._hooks = model, {}, []

    def __enter__(self) -> _LookedUp:
        for name, mod in self.model.named_modules():
            if isinstance(mod, nn.Embedding | nn.EmbeddingBag):
                key = f"{name}.weight" if name else "weight"
                self._hooks.append(mod.register_forward_pre_hook(functools.partial(self._record, key)))
        return self

    def _record(self, key: str, _module, args) -> None:
        ids = args[0] if args else None
        if isinstance(ids, torch.Tensor) and not ids.is_floating_point() and ids.numel():
            seen = torch.unique(ids.detach().reshape(-1).long())
            self.rows[key] = torch.unique(torch.cat([self.rows[key], seen])) if key in self.rows else seen

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()


def _position(idx: int, shape: torch.Size) -> tuple[int, ...]:
    """The index of the ``idx``-th element of a tensor of ``shape`` in row-major order."""
    at = []
    for size in reversed(shape):
        idx, rest = divmod(idx, size)
        at.append(rest)
    return tuple(reversed(at))


def _grade(name: str, found: _Comparison, atol: float, kinks: bool, budget_note: str, f0: float = 0.0,
           floor: float | None = None) -> Verdict:
    """The verdict on a comparison, with cs231n's thresholds; ``f0`` is the loss and ``floor`` the difference
    below which two gradients agree at its scale."""
    checked, vanishing, crossings = found.checked, found.vanishing, found.crossings
    floor = atol if floor is None else floor
    expected = f"< 1e-4 (kinks), <= 1e-7 (smooth); |a - n| <= {atol:g} x max(1, |loss|) agrees"
    if checked and vanishing and vanishing + found.noise == checked:
        jumps = f"; at {found.noise} the difference jumped by round-off (|grad| < {atol:g} there too)" \
            if found.noise else ""
        return Verdict(name, "warn", f"vanishing gradients: all {checked} sampled |grad| < {atol:g} (max "
                       f"{found.largest:.2g}{jumps})", expected,
                       "the loss barely depends on the weights: dead or saturated units, a vanishing signal through "
                       "depth (see variance propagation) or a detached graph; the backward itself is not at fault")
    if found.flat and not found.stepped:  # flat and never moving: a gradient for a weight the loss ignores
        found.worst = max([found.worst, *found.flat])
    err, where = found.worst
    quality = _quality(err, kinks)
    names = sorted({pname for _, pname in found.flat})
    stepped = (f"; at {len(found.flat)} of {checked} the data loss is flat to the difference's step, moves by a "
               f"larger one, and autograd gives a gradient ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
               ) if found.flat and found.stepped else ""
    if not math.isfinite(err):
        return Verdict(name, "fail", f"non-finite loss or gradient at '{where}'", expected,
                       "the objective is NaN/Inf, so no gradient can be checked: look for NaN/Inf in the inputs, "
                       "log(0) or division by zero in the loss, or overflowing weights")
    if err > 1e-2:
        status = "fail"
        advice = f"the backward pass of '{where}' disagrees with the numbers: check custom backward code"
        if abs(f0) > LARGE_LOSS:
            advice += (f" - or, with none, the loss itself: at {f0:.3g} centred differences lose most of their "
                       f"digits; bring the loss near 1 (standardize regression targets) and check again")
    elif err > 1e-4:
        status = "warn"
        advice = ("uncomfortable; with kinks (ReLU/max) a crossing can cause this: retry with other data"
                  if kinks else f"uncomfortable for a smooth network ('{where}')")
    else:
        status, advice = "pass", ""
    note = f", {vanishing} of {checked} sampled gradients below {atol:g}, not compared" if vanishing else ""
    note += f", {crossings} kink crossing{'s' if crossings != 1 else ''} skipped" if crossings else ""
    note += budget_note
    if abs(f0) > LARGE_LOSS:
        note += f"; loss {f0:.3g}: differences up to {floor:.2g} are round-off"
    if stepped and status == "pass":
        return Verdict(name, "info", f"largest relative error {err:.2e} ({quality}{note}){stepped}", expected,
                       STEP_ADVICE)
    return Verdict(name, status, f"largest relative error {err:.2e} ({quality}{note}){stepped}", expected, advice)


def _to_double(value):
    """``value`` with its lower-precision floating tensors (also inside tuples, lists and dicts) in float64."""
    if isinstance(value, torch.Tensor):
        return value.double() if value.is_floating_point() and value.dtype != torch.float64 else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_double(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_double(v) for k, v in value.items()}
    return value


def _float_dtypes(value, found: set) -> set:
    """``found`` with the floating dtypes of the tensors in ``value`` (also inside tuples, lists and dicts)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            found.add(value.dtype)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _float_dtypes(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _float_dtypes(v, found)
    return found


class _TrainingDropout(TorchFunctionMode):
    """Records a functional dropout called with ``training=True`` (its default) while the check's copy is in eval
    mode: ``F.dropout(x, p)`` in a forward, dropping units at test time too. ``called`` is its name."""

    _DROPOUTS = {F.dropout: "dropout", F.dropout1d: "dropout1d", F.dropout2d: "dropout2d", F.dropout3d: "dropout3d",
                 F.alpha_dropout: "alpha_dropout", F.feature_alpha_dropout: "feature_alpha_dropout"}

    def __init__(self):
        super().__init__()
        self.called: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = self._DROPOUTS.get(func)
        if name is not None and self.called is None:
            training = kwargs.get("training", args[2] if len(args) > 2 else True)
            p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            if training and p > 0:
                self.called = name
        return func(*args, **kwargs)


class _FloatToDouble(TorchFunctionMode):
    """While the gradient check evaluates its float64 copy: an operation that meets a float64 tensor gets its
    float32 (or half) tensors in float64 too. A user's loss holds its own tensors - an ``nn.Module`` loss's class
    weights, a partial's arguments, weights in a closure or a global (``lambda out, y: F.cross_entropy(out, y,
    weight=w)``) - which would otherwise fail with ``expected scalar type Double but found Float``; the user's
    tensors themselves are not changed."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        dtypes = _float_dtypes(kwargs, _float_dtypes(args, set()))
        if len(dtypes) > 1 and torch.float64 in dtypes:  # most calls have float64 tensors only: left as they are
            args, kwargs = _to_double(args), _to_double(kwargs)
        return func(*args, **kwargs)
