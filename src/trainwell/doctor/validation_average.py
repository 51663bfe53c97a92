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
gives the same wrong form. So do batch sums over every target where the loss averages over fewer or over weights
(a padded batch's positions, ``ignore_index`` set; a class-weighted loss's examples, ``CrossEntropyLoss(weight=w)``
dividing by ``w[y].sum()``), a sequence loss's sums over the sequences against a training loss per token, a total
that holds the loss of a training batch recomputed before the validation
(:mod:`~trainwell.doctor.mixed_validation`), and a validation loss that counts the pads the training loss ignores
(another ``ignore_index`` than the training loss's: :mod:`~trainwell.doctor.validation_pads`). The mean of batch
means of unequal sizes (a small last batch among few batches) that lies ``UNEQUAL`` (5%) or more from the mean per
example on every validation read is a warning; below that (the common case of many batches: a bias well under the
validation loss's own sampling noise) it passes.
A model that returns its own loss (Hugging Face's, given ``labels``: ``model(**batch)["loss"]``) makes its loss
calls inside its forward: once a training forward has returned a scalar with a graph, the calls inside the
validation forwards are read too, and those whose value the forward returns are kept (a returned sum of two, an
auxiliary penalty folded in, is neither call's value and is not read).
A validation loss computed another way (accuracy, another loss than the training one, label smoothing or dropout during
training only) matches none of them and is not read.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from trainwell.doctor import outputs as O
from trainwell.doctor.augmented_validation import position_targets
from trainwell.doctor.average_forms import counts, forms, matched, mixed, targets, tokens
from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.mixed_validation import training_batch_mixed
from trainwell.doctor.relabelled_validation import confusion
from trainwell.doctor.training_loss_call import TrainingLossCall
from trainwell.doctor.validation_classes import class_counts
from trainwell.doctor.validation_pads import pad_reading, pads_counted
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation loss average"
#: the loss functions read (by their name in ``torch.nn.functional``); each reduces to a mean or a sum over rows
LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits")
_FUNCTIONS = {getattr(F, name): name for name in LOSSES if hasattr(F, name)}
#: the loss functions whose integer targets are class indices, some ignored (``ignore_index``, -100 by default)
_CLASS_INDEX = ("cross_entropy", "nll_loss")
LEAST = 2  # validations read before a verdict
#: how the failing verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
WRONG_AVERAGE = "the validation loss is averaged with the wrong denominator"
BATCHES = 4096  # loss calls kept per validation, at most
VALIDATIONS = 64  # validations kept, at most
DRAWS = 3  # validations whose targets are kept (for :mod:`~trainwell.doctor.augmented_validation`)
#: backward passes after forwards in eval mode with gradients (a loop training in eval mode) after which those
#: forwards are no longer read, unless one of them was not followed by a backward (a validation with gradients)
TRAINED = 8


def _backward(func) -> bool:
    """``func`` is a backward pass (the loss calls before it were a training step's, not a validation's): torch's
    backward as it is named at the call, a wrapper set over ``Tensor.backward`` included (``trainwell watch`` reads
    each backward so, and torch dispatches the wrapper). Not held at import: a wrapper set then would be held for
    good (and, through it, the script watch's model), and torch's own backward not known once it is undone."""
    return func is torch.Tensor.backward or func is torch.autograd.backward or func is torch.autograd.grad


class _LossCalls(TorchFunctionMode):
    """Hands each call of a loss of :data:`LOSSES` to its reader."""

    def __init__(self, owner: ValidationLosses):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _FUNCTIONS.get(func)
        if name is not None:
            self.owner.saw(name, args, kwargs, out)
        elif _backward(func):
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
        self.class_counts: torch.Tensor | None = None  # the latest validation's examples per class (class indices)
        self.confusion: torch.Tensor | None = None  # ... its targets against the scores' argmax (C, C)
        self.first_confusion: torch.Tensor | None = None  # ... and the first validation's
        self.confusion_pixels = False  # ... read from a segmenter's per-pixel labels
        # the running sum of the confusion tables of the calls since the last step, per loss function
        self._tables: dict[str, torch.Tensor | None] = {}
        self._pixels = False  # the latest table read per-pixel labels
        self.target_positions: dict[int, bool] = {}  # ... whether its targets are positions (a contrastive loss's)
        self._count = 0  # validations seen
        self._mode: _LossCalls | None = None
        self._rows: int | None = None  # the rows of the latest forward's input (a language model's sequences)
        self._on_training = False  # the latest forward's input is a batch a training forward took
        self._graded = self._backward = False  # the mode entered after a forward with gradients; a backward since
        self._trained = 0  # backward passes after forwards in eval mode with gradients
        self._graded_validations = False  # a forward in eval mode with gradients not followed by a backward
        self._unread: list[bool] | None = None  # set by a backward through the forward not read (its outputs' hook)
        # the training loss's class-index call (:mod:`~trainwell.doctor.training_loss_call`), set by the watch
        self.training: TrainingLossCall | None = None
        # per validation whose loss calls do not ignore it: (its index in validations, pads, targets, non-pad loss
        # sum, count), and the ignore_index the validation passed
        self.pad_reads: list[tuple] = []
        self.pad_ignored: int | None = None
        # the model returns its own loss (a training forward's output holds a scalar with a graph): the loss calls
        # inside its validation forwards are read too, from the index in _pending where the current one's begin,
        # with each call's (function, input) for its confusion table, read once the call is kept
        self.in_forward = False
        # called with each loss call's record and its input as it is kept (``trainwell watch`` tells the calls on
        # the model's own outputs from those on another model's: script_training_rows.ModelOutputs)
        self.on_call: Callable[[tuple, object], None] | None = None
        self._inner: int | None = None
        self._inner_given: list[tuple] = []
        # (rows reached, rows) when the training loss reaches a fixed subset of its output's rows (a graph
        # network's labelled nodes; :func:`~trainwell.doctor.loop_data.masked_rows`), set by the watch
        self.masked: Callable[[], tuple[int, int] | None] | None = None

    def forwarded(self, training: bool, rows: int | None, reached: list[bool] | None = None,
                  on_training: bool = False, out=None) -> None:
        """The end of a forward of the watched model without gradients, or in eval mode (``training`` False) with
        them, its input's ``rows`` (``reached``: set when a backward reaches its outputs): the loss calls that
        follow are read. Not under a mode of the loop's own (``with torch.device("cuda"):`` around the forward):
        leaving it would pop this one. In a loop training in eval mode (:data:`TRAINED` backward passes after such
        forwards, none of them left without one) the forwards with gradients are no longer read: each would
        intercept its step's calls. ``on_training``: its input is a batch a training forward took (a training
        batch's loss recomputed in eval mode before the validation), its loss calls are kept apart. ``out``: what
        the forward returned (read when the calls inside it were, :meth:`began`)."""
        graded = torch.is_grad_enabled()
        if graded and training:
            return
        if graded and self._trained >= TRAINED and not self._graded_validations:
            self._unread = reached
            return
        if self._inner is not None:
            self._returned(out)
        self._enter(rows, on_training, graded)

    def training_output(self, out) -> None:
        """A training forward's output: one holding a scalar with a graph is the model's own loss, and the
        validation forwards compute theirs inside too (:attr:`in_forward`)."""
        if not self.in_forward and not isinstance(out, torch.Tensor):
            self.in_forward = any(t.dim() == 0 and t.is_floating_point() and t.grad_fn is not None
                                  for t in O.leaves(out))

    def began(self, training: bool, rows: int | None, on_training: bool = False) -> None:
        """The start of a forward of the watched model without gradients, or in eval mode with them, when the model
        returns its own loss (Hugging Face's models given their ``labels``; :attr:`in_forward`): the loss calls
        inside the forward are read too; at its end (:meth:`forwarded`) only those whose value it returns are
        kept (an auxiliary loss it computes and folds into another is not the validation's)."""
        graded = torch.is_grad_enabled()
        if graded and (training or self._trained >= TRAINED and not self._graded_validations):
            return
        if self._enter(rows, on_training, graded):
            self._inner, self._inner_given = len(self._pending), []

    def _enter(self, rows: int | None, on_training: bool, graded: bool) -> bool:
        """The mode entered (unless a mode of the loop's own is on: leaving it would pop this one); whether it is
        on."""
        self._rows, self._on_training = rows, on_training
        if self._mode is None and \
                all(type(m).__module__.startswith("trainwell.") for m in _get_current_function_mode_stack()):
            self._mode = _LossCalls(self)
            self._mode.__enter__()
            self._graded, self._backward = graded, False
        return self._mode is not None

    def _returned(self, out) -> None:
        """The end of a forward whose loss calls were read from its start: those whose value the forward returns
        are kept."""
        returned = {t.data_ptr() for t in O.leaves(out) if t.dim() == 0 and t.is_floating_point()}
        inner = self._pending[self._inner:]
        kept = [(p, given) for p, given in zip(inner, self._inner_given, strict=True) if p[3].data_ptr() in returned]
        self._pending[self._inner:] = [p for p, _ in kept]
        for p, given in kept:
            if p[5] is not None and not p[8]:
                self._confused(p[0], confusion(given, p[4], p[5]), given.dim() > 2)
        self._inner, self._inner_given = None, []

    @property
    def pending(self) -> list[tuple]:
        """The loss calls kept since the last step or validation (read, not changed)."""
        return self._pending

    def paused(self) -> None:
        """A forward begins (or a step, a validation, the watch's end): the mode is left, when it is the last one
        entered (else it stays, and a later call leaves it)."""
        if self._inner is not None:  # a forward read from its start that did not end (it raised)
            del self._pending[self._inner:]
            self._inner, self._inner_given = None, []
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
            weight = kwargs.get("weight") if name in _CLASS_INDEX else None
            # read at w.validate()
            weight = weight if isinstance(weight, torch.Tensor) else None
            pads = pad_reading(name, given, target, ignored, self.training_pad, weight) \
                if ignored is not None and len(self.pad_reads) < VALIDATIONS else None
            on_training = self._on_training and not self._other_nodes(given)
            if self._inner is not None:  # inside the forward: its table once it is kept
                self._inner_given.append(given)
            elif ignored is not None and not on_training:
                self._confused(name, confusion(given, target, ignored), given.dim() > 2)
            self._pending.append((name, len(given), reduction, out.detach(), target, ignored, self._rows, weight,
                                  on_training, None, pads))
            if self.on_call is not None:
                self.on_call(self._pending[-1], given)

    def _other_nodes(self, given: torch.Tensor) -> bool:
        """Whether a loss call on the output of a forward over a training batch reads other rows of it than the
        training loss does: the training loss reaches a fixed subset of its output's rows (a graph network's
        labelled nodes, the whole graph its one batch) and this call's input has fewer rows than the forward's
        input and as many as neither (``F.cross_entropy(out[val_mask], y[val_mask])``: the validation nodes). A
        call on as many rows as the training nodes stays the training loss recomputed."""
        if self.masked is None or self._rows is None or not len(given) < self._rows:
            return False
        masked = self.masked()
        return masked is not None and masked[1] == self._rows and len(given) != masked[0]

    def _confused(self, name: str, table: torch.Tensor | None, pixels: bool) -> None:
        """Adds one call's confusion table (None: the call is not read) to the running sum of its loss function's
        calls (None for good once one of another shape comes); ``pixels``: read from a segmenter's per-pixel
        labels."""
        if table is None or (name in self._tables and self._tables[name] is None):
            return
        held = self._tables.get(name)
        if held is not None and held.shape != table.shape:
            self._tables[name] = None
        else:
            if held is not None and held.is_inference() and not torch.is_inference_mode_enabled():
                held = held.clone()  # summed under torch.inference_mode(), added to outside it
            self._tables[name] = table if held is None else held.add_(table)
            self._pixels = pixels

    @property
    def training_pad(self) -> int | None:
        """The ``ignore_index`` the training loss passes (its pad id), if any."""
        return self.training.ignore_index if self.training is not None else None

    def trained(self) -> None:
        """A backward pass while the mode is on (a training step in eval mode): the loss calls were not a
        validation's."""
        self._pending, self._tables = [], {}
        self._inner = 0 if self._inner is not None else None
        self._inner_given = []
        self._trained += self._graded and not self._backward
        self._backward = True

    def stepped(self) -> None:
        """``w.step()``: the loss calls before it were not a validation's."""
        self.paused()
        self._pending, self._tables = [], {}

    def validated(self, value: float) -> None:
        """``w.validate(value)``: the loss calls since the last step were the validation's (those of the function
        called first, when several are); those on a training batch are kept apart, unless every one is."""
        self.paused()
        if self._pending and len(self.validations) < VALIDATIONS:
            calls = [p for p in self._pending if p[0] == self._pending[0][0]]
            own = [p for p in calls if not p[8]] or calls
            self.validations.append((value, *validation_calls(self._pending), self._count))
            if all(p[10] is not None for p in own):
                self.pad_reads.append((len(self.validations) - 1, *(sum(p[10][i] for p in own) for i in range(4))))
                self.pad_ignored = own[0][5]
        if self._pending and len(self.targets) < DRAWS:
            first = self._pending[0][0]
            self.targets[self._count] = [target_print(p[4]) for p in self._pending if p[0] == first]
            self.target_kinds[self._count] = [(tuple(p[4].shape), p[4].is_floating_point())
                                              if isinstance(p[4], torch.Tensor) else ((), False)
                                              for p in self._pending if p[0] == first]
            self.target_positions[self._count] = position_targets([p[4] for p in self._pending if p[0] == first])
        if self._pending and self._pending[0][0] in _CLASS_INDEX:
            first = self._pending[0][0]
            self.class_counts = class_counts([p[4] for p in self._pending if p[0] == first], self._pending[0][5])
            if self._tables.get(first) is not None:
                self.confusion, self.confusion_pixels = self._tables[first], self._pixels
                if self.first_confusion is None:
                    self.first_confusion = self.confusion
        self._pending, self._tables, self._count = [], {}, self._count + 1

    def verdict(self, trains: list[float] | None = None) -> Verdict | None:
        """The verdict on the validations read; ``trains``: the training loss at each ``w.validate()`` call."""
        read = floated
        counted = pads_counted([(self.validations[i][0], *floats([pads, total, kept, count]))
                                for i, pads, total, kept, count in self.pad_reads
                                if averaged(self.validations[i][0], read(self.validations[i][1]))],
                               self.training_pad, self.pad_ignored)
        if counted is not None:
            return Verdict(NAME, "fail", *counted)
        return average_verdict([(value, read(calls), read(extra)) for value, calls, extra, _ in self.validations],
                               [trains[i] if trains is not None and i < len(trains) else None
                                for *_, i in self.validations],
                               self.training is not None and self.training.per_target)


def validation_calls(pending: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """The loss calls of a validation as ``w.validate()`` reads them, from the records kept since the last step:
    those of the function called first, as (rows, reduction, value, units, forward rows, targets counted,
    weighted), and apart those on a training batch (none apart when every one is)."""
    calls = [p for p in pending if p[0] == pending[0][0]]
    own = [p for p in calls if not p[8]] or calls

    def read(p) -> tuple:
        return (p[1], p[2], p[3], units(p[4], p[5], p[7]), p[6], counted(p[4], p[5]), p[7] is not None)
    return [read(p) for p in own], [read(p) for p in calls if p[8]] if len(own) < len(calls) else []


def floated(calls: list[tuple]) -> list[tuple]:
    """Loss calls read by :func:`validation_calls` with their values and units as floats (one host sync each)."""
    return [(n, r, v, u, *rest) for (n, r, _, _, *rest), v, u in
            zip(calls, floats([c[2] for c in calls]), floats([c[3] for c in calls]), strict=True)]


def averaged(value: float, calls: list[tuple]) -> bool:
    """Whether ``value`` equals a right average of the loss calls ``calls`` (read as floats): the value given to
    ``w.validate`` is their mean."""
    right = forms(calls)[0] if any(u > 0 for *_, u, _ in counts(calls)) else []
    return any(abs(value - r) <= 1e-4 * max(abs(value), abs(r), 1e-12) for r in right)


def floats(values: list) -> list[float | None]:
    """The values (tensors, or None) as floats: one host sync for the tensors, when they share a device."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if len({t.device for t in tensors}) == 1:
        read = iter(torch.stack([t.detach().double().reshape(()) for t in tensors]).cpu().tolist())
    else:
        read = iter([float(t) for t in tensors])
    return [next(read) if isinstance(v, torch.Tensor) else v for v in values]


def units(target, ignored, weight: torch.Tensor | None = None) -> torch.Tensor | None:
    """The targets a class-index loss averages over (a tensor, no host sync): those not equal to ``ignored`` (a
    language model's non-pad tokens), with class weights the sum of their weights (torch's mean divides by it);
    None for another loss or targets that are not class indices."""
    if counted(target, ignored) is None:
        return None
    kept = target != ignored
    if weight is None or weight.dim() != 1:
        return kept.sum()
    return (weight.detach().double()[torch.where(kept, target, 0).clamp(0, len(weight) - 1)] * kept).sum()


def counted(target, ignored) -> int | None:
    """The targets of a class-index loss, the ignored ones included (every position of a padded batch); None for
    another loss or targets that are not class indices."""
    if ignored is None or not isinstance(target, torch.Tensor) or target.dim() < 1 or target.is_floating_point() \
            or target.is_complex():
        return None
    return target.numel()


def target_print(target) -> torch.Tensor | None:
    """What tells one batch of targets from another, order included (a tensor on the targets' device, no host
    sync): its length, the sum of its values and their sum weighted by position; None for what is not a tensor."""
    if not isinstance(target, torch.Tensor) or target.dim() < 1 or target.is_complex():
        return None
    flat = target.detach().reshape(-1).double()
    weights = torch.arange(1, len(flat) + 1, dtype=torch.float64, device=flat.device)
    return torch.stack([torch.tensor(float(len(flat)), dtype=torch.float64, device=flat.device), flat.sum(),
                        (flat * weights.sqrt()).sum()])


def average_verdict(validations: list[tuple], trains: list[float | None] | None = None,
                    per_target: bool = False) -> Verdict | None:
    """The failing verdict (a warning for a mean of batch means of unequal sizes) on the values given to
    ``w.validate`` against the losses of the batches each validation ran (``(value, calls[, training-batch
    calls])``; ``trains``: the training loss at each; ``per_target``: the training loss's class-index call is a
    mean over its targets); None when they are averaged right, or otherwise (another loss, an accuracy), or too few
    were read."""
    trains = trains or [None] * len(validations)
    found = []
    for (value, calls, *rest), train in zip(validations, trains, strict=True):
        form = matched(value, calls, train, per_target)
        if form[0] is None and rest and rest[0] and mixed(value, calls, rest[0]):
            form = ("mixed", None)
        found.append((form, value, calls, rest[0] if rest else [], train))
    read = [f for f in found if f[0][0] is not None]
    if not read:
        return None
    wrong = {f[0] for f in read}
    if len(read) < LEAST or any(form == "right" for form, _ in wrong) or len(wrong) > 1:  # right: nothing to say
        return None
    (form, count), value, calls, extra, train = read[-1]
    if form == "mixed":
        return Verdict(NAME, "fail", *training_batch_mixed(len(read), value, calls, extra))
    unit = "token" if tokens(calls) else "example"
    units = [u for _, _, _, u, _ in counts(calls)]
    n, batches = round(sum(units)), len(calls)
    mean = forms(calls)[0][0]
    counted_targets, weighted = targets(calls)
    if weighted:
        n = round(sum(r for r, *_ in calls))
    if unit == "token":
        expected = ("the validation loss averaged per token: sum(loss_b * n_tokens_b) / total_tokens (n_tokens: the "
                    "targets not equal to ignore_index)")
        weighted_fix = "sum(loss.item() * (yb != ignore_index).sum().item()) / total_tokens"
    else:
        expected = "the validation loss averaged per example: sum(loss_b * len(y_b)) / len(dataset)"
        weighted_fix = "sum(loss.item() * len(yb)) / len(val_dataset)"
    if form == "unequal":
        return _unequal(len(read), value, forms(calls)[0][2] if weighted else mean,
                        [r for r, *_ in calls] if weighted else units, unit, expected, weighted_fix)
    size = "batch size" if unit == "example" else "sequences per batch" if count == "sequences" else \
        f"{unit}s per batch"
    if form == "means":
        over = {"units": f"{n} {unit}s", "rows": f"{round(sum(r for r, *_ in calls))} {unit}s",
                "sequences": f"{round(sum(s for *_, s in counts(calls)))} "
                             f"{'sequences' if unit == 'token' else 'examples'}"}[count]
        how = (f"the batch means summed and divided by the {over} (not the {batches} batches): {value:.4g} "
               f"where the mean per {unit} is {mean:.4g}, {mean / value:.3g}x larger")
        fix = f"{weighted_fix} (or sum of batch means / len(val_loader) for equal batches)"
    elif count == "targets" and weighted:
        how = (f"the class-weighted batch sums (CrossEntropyLoss(weight=w)) divided by the {n} examples, not by "
               f"the sum of their class weights ({sum(units):.4g}) that the loss's own mean divides by: {value:.4g} "
               f"where the weighted mean is {mean:.4g}, {value / mean:.3g}x")
        expected = ("a class-weighted validation loss averaged as the loss's mean is: sum(w[y] * loss) / sum(w[y]) "
                    "over the validation set, or the batch means weighted by len(y_b)")
        size = "mean class weight"
        fix = ("divide the summed losses by weight[y_val].sum(), not len(val_dataset) (or "
               f"{weighted_fix} with the default reduction)")
    elif count == "targets":
        how = (f"the batch sums divided by all {round(counted_targets)} target positions, padding included, not by "
               f"the {n} tokens the loss averages over (ignore_index skips the pads): {value:.4g} where the mean "
               f"per token is {mean:.4g}, {mean / value:.3g}x larger")
        size = "share of padding"
        fix = "divide by the non-pad tokens, sum((yb != ignore_index).sum()), not by yb.numel() or B * T"
    elif count == "sequences":
        seqs = round(sum(s for *_, s in counts(calls)))
        how = (f"the batch sums over the tokens divided by the {seqs} sequences: a loss per sequence ({value:.4g}, "
               f"about {n / seqs:.3g} tokens each) while the training loss is per token"
               f"{f' ({train:.4g})' if train is not None else ''}; the mean per token is {mean:.4g}")
        size = "tokens per sequence"
        fix = "sum(loss.item() for reduction='sum') / total_tokens, the unit of the training loss"
    elif batches == 1:
        how = (f"the sum over the {n} {unit}s of one loss call (reduction='sum'), never divided: {value:.4g} where "
               f"the mean per {unit}, the training loss's measure, is {mean:.4g}, {value / mean:.3g}x smaller")
        size = f"number of {unit}s"
        fix = f"divide the sum by the {n} {unit}s (or call the loss with its default reduction='mean')"
    else:
        how = (f"the batch sums (reduction='sum') added and divided by the {batches} batches (not the {n} "
               f"{unit}s): {value:.4g} where the mean per {unit} is {mean:.4g}, {value / mean:.3g}x smaller")
        total = "total_tokens" if unit == "token" else "len(val_dataset)"
        fix = f"sum(loss.item()) / {total} with reduction='sum' (or the batch means weighted by their sizes)"
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
