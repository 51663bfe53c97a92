"""``loop: validation loss average``: the validation loss averaged with the wrong denominator.

A validation loss summed over the batches and divided by the wrong count is off by the batch size:
``sum(F.cross_entropy(model(xb), yb).item() for xb, yb in val_loader) / len(val_dataset)`` adds batch *means* and
divides by the number of examples (a value batch-size times too small, that reads as a model generalizing far
better than it trains), and ``sum(F.cross_entropy(..., reduction="sum").item() ...) / len(val_loader)`` adds
per-example *sums* and divides by the number of batches (batch-size times too large, read as overfitting). The
watch sees the loss calls the validation makes: the loss functions of ``torch.nn.functional`` (:data:`LOSSES`,
also called by ``nn.CrossEntropyLoss`` and the other loss modules) called after a forward of the watched model
without gradients, or in eval mode with them (a validation that forgot ``torch.no_grad()``; the calls before a
backward are a training step's, and dropped), before the next forward, ``w.step()`` or ``w.validate()``, are read:
each batch's rows (the input's first dimension), the units the loss averages over (a class-index loss's targets
not equal to ``ignore_index``: a language model's non-pad tokens, its scores flattened to (B*T, V)), the rows of
the forward (its sequences) and the value returned (kept as a tensor, read at report time). The averages of
:mod:`~trainwell.doctor.average_forms` are compared with the value given: a validation equal to a wrong one (batch
means summed over the examples, tokens or sequences; batch sums over the batches) and not to a right one (the mean
per example or token, the mean of the batch means), which lie at least ``APART`` x away from it, is averaged with
the wrong denominator; the verdict fails when :data:`LEAST` validations or more were read so and every one read
gives the same wrong form. The mean of batch means of unequal sizes (a small last batch among few batches) that
lies ``UNEQUAL`` (5%) or more from the mean per example on every validation read is a warning; below that (the
common case of many batches: a bias well under the validation loss's own sampling noise) it passes. A validation
loss computed another way (accuracy, another loss than the training one, label smoothing or dropout during
training only) matches none of them and is not read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from trainwell.doctor.augmented_validation import position_targets
from trainwell.doctor.average_forms import counts, forms, matched, tokens
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation loss average"
#: the loss functions read (by their name in ``torch.nn.functional``); each reduces to a mean or a sum over rows
LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits")
_FUNCTIONS = {getattr(F, name): name for name in LOSSES if hasattr(F, name)}
#: the loss functions whose integer targets are class indices, some ignored (``ignore_index``, -100 by default)
_CLASS_INDEX = ("cross_entropy", "nll_loss")
#: a backward pass: the loss calls before it were a training step's, not a validation's
_BACKWARDS = (torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad)
LEAST = 2  # validations read before a verdict
#: how the failing verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
WRONG_AVERAGE = "the validation loss is averaged with the wrong denominator"
BATCHES = 4096  # loss calls kept per validation, at most
VALIDATIONS = 64  # validations kept, at most
DRAWS = 3  # validations whose targets are kept (for :mod:`~trainwell.doctor.augmented_validation`)
#: backward passes after forwards in eval mode with gradients (a loop training in eval mode) after which those
#: forwards are no longer read, unless one of them was not followed by a backward (a validation with gradients)
TRAINED = 8


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
        elif func in _BACKWARDS:
            self.owner.trained()
        return out


class ValidationLosses:
    """The loss calls after a forward of the watched model without gradients, or in eval mode with gradients (a
    validation that forgot ``torch.no_grad()``), till the next forward, a backward, ``w.step()`` or
    ``w.validate()``, and the value each validation was given. A :class:`~torch.overrides.TorchFunctionMode` is
    entered at the end of such a forward (:meth:`forwarded`) and left at the next forward's start (:meth:`paused`),
    at ``w.step()`` and ``w.validate()``: training forwards (train mode, with gradients) and their losses run
    without it; the losses before a backward (a loop training in eval mode) are dropped."""

    def __init__(self):
        # (function, rows, reduction, value, target, ignore_index, forward rows), till w.step or w.validate
        self._pending: list[tuple] = []
        # (value, [(rows, reduction, value, units, forward rows)])
        self.validations: list[tuple[float, list[tuple]]] = []
        self.targets: dict[int, list[torch.Tensor]] = {}  # per validation (its index): its targets' fingerprints
        self.target_kinds: dict[int, list[tuple]] = {}  # ... its targets' (shape, floating)
        self.target_positions: dict[int, bool] = {}  # ... whether its targets are positions (a contrastive loss's)
        self._count = 0  # validations seen
        self._mode: _LossCalls | None = None
        self._rows: int | None = None  # the rows of the latest forward's input (a language model's sequences)
        self._graded = self._backward = False  # the mode entered after a forward with gradients; a backward since
        self._trained = 0  # backward passes after forwards in eval mode with gradients
        self._graded_validations = False  # a forward in eval mode with gradients not followed by a backward
        self._unread: list[bool] | None = None  # set by a backward through the forward not read (its outputs' hook)

    def forwarded(self, training: bool, rows: int | None, reached: list[bool] | None = None) -> None:
        """The end of a forward of the watched model without gradients, or in eval mode (``training`` False) with
        them, its input's ``rows`` (``reached``: set when a backward reaches its outputs): the loss calls that
        follow are read. Not under a mode of the loop's own (``with torch.device("cuda"):`` around the forward):
        leaving it would pop this one. In a loop training in eval mode (:data:`TRAINED` backward passes after such
        forwards, none of them left without one) the forwards with gradients are no longer read: each would
        intercept its step's calls."""
        graded = torch.is_grad_enabled()
        if graded and training:
            return
        if graded and self._trained >= TRAINED and not self._graded_validations:
            self._unread = reached
            return
        self._rows = rows
        if self._mode is None and \
                all(type(m).__module__.startswith("trainwell.") for m in _get_current_function_mode_stack()):
            self._mode = _LossCalls(self)
            self._mode.__enter__()
            self._graded, self._backward = graded, False

    def paused(self) -> None:
        """A forward begins (or a step, a validation, the watch's end): the mode is left, when it is the last one
        entered (else it stays, and a later call leaves it)."""
        if self._unread is not None:  # a forward not read, in eval mode with gradients, without a backward
            self._graded_validations = self._graded_validations or not self._unread[0]
            self._unread = None
        mode = self._mode
        if mode is None:
            return
        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is mode:
            mode.__exit__(None, None, None)
            self._mode = None
            self._graded_validations = self._graded_validations or (self._graded and not self._backward)

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
            ignored = kwargs.get("ignore_index", -100) if name in _CLASS_INDEX else None
            # read at w.validate()
            self._pending.append((name, len(given), reduction, out.detach(), target, ignored, self._rows))

    def trained(self) -> None:
        """A backward pass while the mode is on (a training step in eval mode): the loss calls were not a
        validation's."""
        self._pending = []
        self._trained += self._graded and not self._backward
        self._backward = True

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
            self.validations.append((value, [(n, r, v, units(t, ignored), rows)
                                             for f, n, r, v, t, ignored, rows in self._pending if f == first]))
        if self._pending and len(self.targets) < DRAWS:
            first = self._pending[0][0]
            self.targets[self._count] = [target_print(p[4]) for p in self._pending if p[0] == first]
            self.target_kinds[self._count] = [(tuple(p[4].shape), p[4].is_floating_point())
                                              if isinstance(p[4], torch.Tensor) else ((), False)
                                              for p in self._pending if p[0] == first]
            self.target_positions[self._count] = position_targets([p[4] for p in self._pending if p[0] == first])
        self._pending, self._count = [], self._count + 1

    def verdict(self) -> Verdict | None:
        return average_verdict([(value, [(n, r, v, u, rows) for (n, r, _, _, rows), v, u in
                                         zip(calls, floats([c[2] for c in calls]), floats([c[3] for c in calls]),
                                             strict=True)]) for value, calls in self.validations])


def floats(values: list) -> list[float | None]:
    """The values (tensors, or None) as floats: one host sync for the tensors, when they share a device."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if len({t.device for t in tensors}) == 1:
        read = iter(torch.stack([t.detach().double().reshape(()) for t in tensors]).cpu().tolist())
    else:
        read = iter([float(t) for t in tensors])
    return [next(read) if isinstance(v, torch.Tensor) else v for v in values]


def units(target, ignored) -> torch.Tensor | None:
    """The targets a class-index loss averages over (a tensor, no host sync): those not equal to ``ignored`` (a
    language model's non-pad tokens); None for another loss or targets that are not class indices."""
    if ignored is None or not isinstance(target, torch.Tensor) or target.dim() < 1 or target.is_floating_point() \
            or target.is_complex():
        return None
    return (target != ignored).sum()


def target_print(target) -> torch.Tensor | None:
    """What tells one batch of targets from another, order included (a tensor on the targets' device, no host
    sync): its length, the sum of its values and their sum weighted by position; None for what is not a tensor."""
    if not isinstance(target, torch.Tensor) or target.dim() < 1 or target.is_complex():
        return None
    flat = target.detach().reshape(-1).double()
    weights = torch.arange(1, len(flat) + 1, dtype=torch.float64, device=flat.device)
    return torch.stack([torch.tensor(float(len(flat)), dtype=torch.float64, device=flat.device), flat.sum(),
                        (flat * weights.sqrt()).sum()])


def average_verdict(validations: list[tuple[float, list[tuple]]]) -> Verdict | None:
    """The failing verdict (a warning for a mean of batch means of unequal sizes) on the values given to
    ``w.validate`` against the losses of the batches each validation ran; None when they are averaged right, or
    otherwise (another loss, an accuracy), or too few were read."""
    found = [(matched(value, calls), value, calls) for value, calls in validations]
    read = [f for f in found if f[0][0] is not None]
    if not read:
        return None
    wrong = {f[0] for f in read}
    if len(read) < LEAST or any(form == "right" for form, _ in wrong) or len(wrong) > 1:  # right: nothing to say
        return None
    (form, count), value, calls = read[-1]
    unit = "token" if tokens(calls) else "example"
    units = [u for _, _, _, u, _ in counts(calls)]
    n, batches = round(sum(units)), len(calls)
    mean = forms(calls)[0][0]
    if unit == "token":
        expected = ("the validation loss averaged per token: sum(loss_b * n_tokens_b) / total_tokens (n_tokens: the "
                    "targets not equal to ignore_index)")
        weighted = "sum(loss.item() * (yb != ignore_index).sum().item()) / total_tokens"
    else:
        expected = "the validation loss averaged per example: sum(loss_b * len(y_b)) / len(dataset)"
        weighted = "sum(loss.item() * len(yb)) / len(val_dataset)"
    if form == "unequal":
        return _unequal(len(read), value, mean, units, unit, expected, weighted)
    if form == "means":
        over = {"units": f"{n} {unit}s", "rows": f"{round(sum(r for r, *_ in calls))} {unit}s",
                "sequences": f"{round(sum(s for *_, s in counts(calls)))} "
                             f"{'sequences' if unit == 'token' else 'examples'}"}[count]
        how = (f"the batch means summed and divided by the {over} (not the {batches} batches): {value:.4g} "
               f"where the mean per {unit} is {mean:.4g}, {mean / value:.3g}x larger")
        fix = f"{weighted} (or sum of batch means / len(val_loader) for equal batches)"
    else:
        how = (f"the batch sums (reduction='sum') added and divided by the {batches} batches (not the {n} "
               f"{unit}s): {value:.4g} where the mean per {unit} is {mean:.4g}, {value / mean:.3g}x smaller")
        total = "total_tokens" if unit == "token" else "len(val_dataset)"
        fix = f"sum(loss.item()) / {total} with reduction='sum' (or the batch means weighted by their sizes)"
    size = "batch size" if unit == "example" else "sequences per batch" if count == "sequences" else \
        f"{unit}s per batch"
    return Verdict(NAME, "fail", f"{WRONG_AVERAGE} on all {len(read)} "
                   f"validations read: {how}", expected,
                   f"the value given to w.validate is off by about the {size}, so its gap to the training loss and "
                   f"early stopping on it read nothing: average per {unit}, {fix}")


def _unequal(read: int, value: float, mean: float, units: list[float], unit: str, expected: str,
             weighted: str) -> Verdict:
    """The warning on a mean of batch means whose batches differ in size (a small last batch, or batches with more
    padding) enough to move it :data:`~trainwell.doctor.average_forms.UNEQUAL` or more from the mean per unit."""
    sizes = f"batches of {round(min(units))} to {round(max(units))} {unit}s"
    return Verdict(NAME, "warn", f"the validation loss is the mean of {len(units)} batch means over {sizes} on all "
                   f"{read} validations read: {value:.4g} where the mean per {unit} is {mean:.4g} "
                   f"({abs(value - mean) / abs(mean):.0%} off)", expected,
                   f"the smallest batch's few {unit}s count for a whole 1/{len(units)} of the value: weight each "
                   f"batch's mean by its size, {weighted}")
