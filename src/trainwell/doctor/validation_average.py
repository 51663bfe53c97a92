"""``loop: validation loss average``: the validation loss averaged with the wrong denominator.

A validation loss summed over the batches and divided by the wrong count is off by the batch size:
``sum(F.cross_entropy(model(xb), yb).item() for xb, yb in val_loader) / len(val_dataset)`` adds batch *means* and
divides by the number of examples (a value batch-size times too small, that reads as a model generalizing far
better than it trains), and ``sum(F.cross_entropy(..., reduction="sum").item() ...) / len(val_loader)`` adds
per-example *sums* and divides by the number of batches (batch-size times too large, read as overfitting). The
watch sees the loss calls the validation makes: the loss functions of ``torch.nn.functional`` (:data:`LOSSES`,
also called by ``nn.CrossEntropyLoss`` and the other loss modules) called after a forward of the watched model
without gradients, before the next forward, ``w.step()`` or ``w.validate()``, are read: each batch's rows (the
input's first dimension) and the value returned (kept as a tensor, read at report time). From them:

- the mean per example, ``sum(mean_b * n_b) / N`` (what ``w.validate`` should get; the mean of the batch means,
  ``sum(mean_b) / B``, equal to it for equal batches, passes too);
- the sum of the batch means over the examples, ``sum(mean_b) / N``, and the sum of the batch sums over the
  batches, ``sum(mean_b * n_b) / B``.

A validation whose value equals one of the last two (to a relative :data:`CLOSE`) and not the first two, which lie
at least :data:`APART` x away from it, is averaged with the wrong denominator; the verdict fails when
:data:`LEAST` validations or more were read so and every one read gives the same wrong form. A validation loss
computed another way (accuracy, another loss than the training one, label smoothing or dropout during training
only) matches none of them and is not read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from trainwell.doctor.verdict import Verdict

NAME = "loop: validation loss average"
#: the loss functions read (by their name in ``torch.nn.functional``); each reduces to a mean or a sum over rows
LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits")
_FUNCTIONS = {getattr(F, name): name for name in LOSSES if hasattr(F, name)}
CLOSE = 1e-4  # relative difference within which the given value equals a form
APART = 2.0  # the wrong form at least this factor from the right one
LEAST = 2  # validations read before a verdict
#: how the failing verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
WRONG_AVERAGE = "the validation loss is averaged with the wrong denominator"
BATCHES = 4096  # loss calls kept per validation, at most
VALIDATIONS = 64  # validations kept, at most
DRAWS = 3  # validations whose targets are kept (for :mod:`~trainwell.doctor.augmented_validation`)


class _LossCalls(TorchFunctionMode):
    """Hands each call of a loss of :data:`LOSSES` to its reader."""

    def __init__(self, owner: ValidationLosses):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _FUNCTIONS.get(func)
        if name is not None:
            self.owner.saw(name, args, kwargs, out)
        return out


class ValidationLosses:
    """The loss calls after a forward without gradients of the watched model, till the next forward, ``w.step()``
    or ``w.validate()``, and the value each validation was given. A
    :class:`~torch.overrides.TorchFunctionMode` is entered at the end of such a forward (:meth:`forwarded`) and
    left at the next forward's start (:meth:`paused`), at ``w.step()`` and ``w.validate()``: training forwards
    (with gradients) and their losses run without it."""

    def __init__(self):
        self._pending: list[tuple] = []  # (function, rows, reduction, value, target), till w.step or w.validate
        self.validations: list[tuple[float, list[tuple[int, str, torch.Tensor]]]] = []
        self.targets: dict[int, list[torch.Tensor]] = {}  # per validation (its index): its targets' fingerprints
        self.target_kinds: dict[int, list[tuple]] = {}  # ... its targets' (shape, floating)
        self._count = 0  # validations seen
        self._mode: _LossCalls | None = None

    def forwarded(self) -> None:
        """The end of a forward of the watched model without gradients: the loss calls that follow are read. Not
        under a mode of the loop's own (``with torch.device("cuda"):`` around the forward): leaving it would pop
        this one."""
        if self._mode is None and not torch.is_grad_enabled() and \
                all(type(m).__module__.startswith("trainwell.") for m in _get_current_function_mode_stack()):
            self._mode = _LossCalls(self)
            self._mode.__enter__()

    def paused(self) -> None:
        """A forward begins (or a step, a validation, the watch's end): the mode is left, when it is the last one
        entered (else it stays, and a later call leaves it)."""
        mode = self._mode
        if mode is None:
            return
        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is mode:
            mode.__exit__(None, None, None)
            self._mode = None

    def saw(self, name: str, args: tuple, kwargs: dict, out) -> None:
        """One loss call reduced to a mean or a sum of rows: kept (its target by reference) till the next
        ``w.step()`` or ``w.validate()``."""
        if len(self._pending) >= BATCHES or not isinstance(out, torch.Tensor) or \
                out.dim() != 0 or kwargs.get("size_average") is not None or kwargs.get("reduce") is not None or \
                len(args) > 2:
            return
        given = args[0] if args else kwargs.get("input")
        reduction = kwargs.get("reduction", "mean")
        target = args[1] if len(args) > 1 else kwargs.get("target")
        if isinstance(given, torch.Tensor) and given.dim() >= 1 and len(given) and reduction in ("mean", "sum"):
            self._pending.append((name, len(given), reduction, out.detach(), target))  # read at w.validate()

    def stepped(self) -> None:
        """``w.step()``: the loss calls before it were not a validation's."""
        self.paused()
        self._pending = []

    def validated(self, value: float) -> None:
        """``w.validate(value)``: the loss calls since the last step were the validation's (those of the function
        called first, when several are)."""
        self.paused()
        if self._pending and len(self.validations) < VALIDATIONS:
            first = self._pending[0][0]
            self.validations.append((value, [(n, r, v) for f, n, r, v, _ in self._pending if f == first]))
        if self._pending and len(self.targets) < DRAWS:
            first = self._pending[0][0]
            self.targets[self._count] = [target_print(t) for f, _, _, _, t in self._pending if f == first]
            self.target_kinds[self._count] = [(tuple(t.shape), t.is_floating_point()) if isinstance(t, torch.Tensor)
                                              else ((), False) for f, _, _, _, t in self._pending if f == first]
        self._pending, self._count = [], self._count + 1

    def verdict(self) -> Verdict | None:
        return average_verdict([(value, [(n, r, float(v)) for n, r, v in calls]) for value, calls in self.validations])


def target_print(target) -> torch.Tensor | None:
    """What tells one batch of targets from another, order included (a tensor on the targets' device, no host
    sync): its length, the sum of its values and their sum weighted by position; None for what is not a tensor."""
    if not isinstance(target, torch.Tensor) or target.dim() < 1 or target.is_complex():
        return None
    flat = target.detach().reshape(-1).double()
    weights = torch.arange(1, len(flat) + 1, dtype=torch.float64, device=flat.device)
    return torch.stack([torch.tensor(float(len(flat)), dtype=torch.float64, device=flat.device), flat.sum(),
                        (flat * weights.sqrt()).sum()])


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= CLOSE * max(abs(a), abs(b), 1e-12)


def wrong_form(value: float, calls: list[tuple[int, str, float]]) -> str | None:
    """Which wrong average ``value`` is of the batches' losses (``calls``: rows, reduction, value per batch):
    ``"means"`` (batch means summed, over the examples), ``"sums"`` (batch sums summed, over the batches),
    ``"right"`` (the mean per example, or the mean of the batch means), or None (none of them)."""
    if len(calls) < 2:
        return None
    n = sum(r for r, _, _ in calls)
    means = [v / r if red == "sum" else v for r, red, v in calls]
    sums = [v if red == "sum" else v * r for r, red, v in calls]
    right = (sum(sums) / n, sum(means) / len(calls))
    wrong = {"means": sum(means) / n, "sums": sum(sums) / len(calls)}
    if any(_close(value, r) for r in right):
        return "right"
    for form, w in wrong.items():
        if _close(value, w) and all(abs(w) >= APART * abs(r) or abs(r) >= APART * abs(w) for r in right):
            return form
    return None


def average_verdict(validations: list[tuple[float, list[tuple[int, str, float]]]]) -> Verdict | None:
    """The failing verdict on the values given to ``w.validate`` against the losses of the batches each validation
    ran; None when they are averaged right, or otherwise (another loss, an accuracy), or too few were read."""
    forms = [(wrong_form(value, calls), value, calls) for value, calls in validations]
    read = [f for f in forms if f[0] is not None]
    if not read:
        return None
    expected = "the validation loss averaged per example: sum(loss_b * len(y_b)) / len(dataset)"
    wrong = {f[0] for f in read}
    if len(read) < LEAST or wrong & {"right"} or len(wrong) > 1:  # averaged right: nothing to say
        return None
    form, value, calls = read[-1]
    n, batches = sum(r for r, _, _ in calls), len(calls)
    mean = sum(v if red == "sum" else v * r for r, red, v in calls) / n
    if form == "means":
        how = (f"the batch means summed and divided by the {n} examples (not the {batches} batches): {value:.4g} "
               f"where the mean per example is {mean:.4g}, {mean / value:.3g}x larger")
        fix = ("sum(loss.item() * len(yb)) / len(val_dataset) (or sum of batch means / len(val_loader) for equal "
               "batches)")
    else:
        how = (f"the batch sums (reduction='sum') added and divided by the {batches} batches (not the {n} "
               f"examples): {value:.4g} where the mean per example is {mean:.4g}, {value / mean:.3g}x smaller")
        fix = "sum(loss.item()) / len(val_dataset) with reduction='sum' (or the batch means weighted by their sizes)"
    return Verdict(NAME, "fail", f"{WRONG_AVERAGE} on all {len(read)} "
                   f"validations read: {how}", expected,
                   f"the value given to w.validate is off by about the batch size, so its gap to the training loss "
                   f"and early stopping on it read nothing: average per example, {fix}")
