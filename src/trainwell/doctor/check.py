"""``check``: every pre-flight check on a user's own model, data, loss and optimizer, with no side effects.

The checklist is cs231n's "babysitting the learning process" and Karpathy's "A recipe for training neural
networks" (see :mod:`trainwell.doctor.preflight`). The user's objects are left exactly as they were: the global
RNG states (torch, Python, NumPy), every parameter and buffer, every ``.grad``, every module's ``training`` flag,
and the optimizer's state (it is read for its weight decay, never stepped).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from trainwell import doctor
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))
    >>> x = torch.randn(64, 4)
    >>> y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    >>> report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    >>> report["initial loss"].status, report.failed
    ('pass', [])
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import checkpointing, global_rngs, no_grad_layers
from trainwell.doctor import preflight as pf
from trainwell.doctor.bags import as_bag_inputs, extra_bag_hint
from trainwell.doctor.batch_flatten import flattened_batch
from trainwell.doctor.batch_layout import installed, read_batch_first
from trainwell.doctor.batchnorm_momentum import batchnorm_momentum_verdict
from trainwell.doctor.check_deferrals import (
    AXIS_BOUND,
    defer_to_input_scale,
    defer_to_inverted_mask,
    defer_to_large_scores,
    defer_to_symmetry,
    defer_to_unbounded,
    defer_to_vanishing,
    defer_to_weights,
    with_dropout_rate,
)
from trainwell.doctor.class_axis import scrambled_classes
from trainwell.doctor.data_scale import defer_to_data_scale
from trainwell.doctor.doubled_skip import defer_to_skips, doubled_skip_verdict, doubled_skips
from trainwell.doctor.dropout_rate import dropout_rate_verdict
from trainwell.doctor.echoed_targets import echoed_targets
from trainwell.doctor.first_call import runs_on_data, whole_input_only
from trainwell.doctor.input_scale import input_scale_verdict
from trainwell.doctor.inputs import Inputs, StructuredLoss, Targets, as_targets, call
from trainwell.doctor.inverted_mask import check_inverted_mask
from trainwell.doctor.lazy_parameters import materialize
from trainwell.doctor.loss_inputs import read_loss_inputs
from trainwell.doctor.mixing_site import name_mixing_site
from trainwell.doctor.norm_groups import check_norm_groups, defer_to_norm_groups
from trainwell.doctor.opponent_loss import baseline_against_opponent, opponent_parameters
from trainwell.doctor.optimizer_check import optimizer_holds
from trainwell.doctor.output_layer import (
    defer_to_scores_batchnorm,
    dropout_on_scores,
    scores_activation_verdict,
    scores_batchnorm_verdict,
    scores_dropout_verdict,
)
from trainwell.doctor.overlapping_window import overlapping_window
from trainwell.doctor.padded_loss import padded_loss
from trainwell.doctor.padding_read import padding_read
from trainwell.doctor.pos_weight import check_pos_weight
from trainwell.doctor.report import Report
from trainwell.doctor.sequence_batchnorm import batchnorm_axis_verdict
from trainwell.doctor.sequence_first_batches import (
    check_independence,
    example_readings,
    name_sequence_first,
    sequence_first_crash,
)
from trainwell.doctor.sequence_targets import sequence_targets
from trainwell.doctor.structure_readings import defer_to_structure, structure_verdicts
from trainwell.doctor.target_range import (
    constant_targets,
    defer_to_constant_targets,
    ignored_all_but_one,
    ignored_class,
    multi_hot_targets,
    unreachable_targets,
)
from trainwell.doctor.targets import raw_unit_targets
from trainwell.doctor.verdict import Verdict
from trainwell.regularize import l2_penalty
from trainwell.train.uncompiled import uncompiled

try:  # NumPy is a dependency of trainwell, but the guard must not need it
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None


class untouched:  # noqa: N801 - used like a function: ``with untouched(model, optimizer):``
    """Restore everything a check could change on exit, also on an exception: global RNG states (torch CPU and
    the model's CUDA devices, Python ``random``, NumPy), parameter and buffer values (in place, so optimizers and
    user references stay valid), each parameter's ``.grad`` (the same tensor object, same values, or None),
    ``requires_grad`` flags, and every module's ``training`` flag. An optimizer is only checked, never stepped."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
        self.model, self.optimizer = model, optimizer

    def __enter__(self) -> untouched:
        m = self.model
        devices = sorted({t.device.index or 0 for t in m.state_dict().values() if t.is_cuda})
        self._rng = global_rngs.kept(devices)
        self._rng.__enter__()
        self._modes = [(mod, mod.training) for mod in m.modules()]
        tensors = {id(t): t for t in [*m.state_dict(keep_vars=True).values(), *m.buffers()]}  # non-persistent too
        self._values = [(t, t.detach().clone()) for t in tensors.values()]
        self._params = [(p, p.requires_grad, p.grad, None if p.grad is None else p.grad.detach().clone())
                        for p in m.parameters()]
        return self

    def __exit__(self, *exc) -> None:
        try:
            with torch.no_grad():
                for t, value in self._values:
                    if t.shape == value.shape:
                        t.copy_(value)
                for p, requires, grad, value in self._params:
                    p.requires_grad_(requires)
                    if grad is not None:
                        grad.copy_(value)
                    p.grad = grad
            for mod, mode in self._modes:
                mod.training = mode
        finally:
            self._rng.__exit__(*exc)


def _weight_decay(optimizer: torch.optim.Optimizer | None) -> float:
    if optimizer is None or isinstance(optimizer, torch.optim.AdamW):
        return 0.0
    # coupled decay (torch's weight_decay in SGD, Adam, RMSprop) adds wd * w to the gradient: an L2 penalty of that
    # strength. Decoupled decay (AdamW, trainwell's "decoupled_weight_decay") shrinks w by lr * wd per step beside
    # an adaptive step of size ~lr: no L2 penalty of that strength (AdamW's 0.01 would read as a dominant one)
    return max((float(g.get("weight_decay", 0.0) or 0.0) for g in optimizer.param_groups
                if not g.get("decoupled_weight_decay")), default=0.0)


def one_value(y) -> bool:
    """Whether a target tensor holds a single value (False for several targets)."""
    return isinstance(y, torch.Tensor) and y.numel() > 0 and bool((y == y.reshape(-1)[0]).all())


def check(model: nn.Module, x: torch.Tensor | tuple | list | dict, y: torch.Tensor, loss_fn: Callable, *,
          penalty: Callable[[nn.Module], torch.Tensor] | None = None,
          optimizer: torch.optim.Optimizer | None = None, num_classes: int | None = None,
          examples: int = 256) -> Report:
    """Run every pre-flight check on your own model and a batch of your data; return a :class:`Report`.

    Checks, in the lecture's order: every trainable tensor the loss depends on is a registered parameter (frozen
    ones listed); initial loss vs what the loss *is* (ln C for cross-entropy, also for a custom loss that behaves
    like it; "skipped: unknown loss" otherwise, never a pass), regularization raises the loss, gradient check on
    the data loss and then with the penalty, penalty vs data loss, overfitting 20 examples down to the lowest loss
    any outputs reach, symmetric units, variance propagation through depth, an input-independent baseline on
    held-out examples, batch independence. Each returns pass / warn / fail, or skip with the reason (a check that
    cannot look never passes); an exception inside a check becomes that check's skip. On a large model the costly
    checks sample within :data:`~trainwell.doctor.budget.TIME_BUDGET_S` seconds each and say so. Called inside
    ``torch.autocast``, the checks run with autocast off: they judge the model in its weights' precision. Lazy
    modules (``nn.LazyLinear``) not yet run get their parameters from one eval-mode forward of ``x`` first, drawn
    from the random state the loop would draw them from (:mod:`~trainwell.doctor.lazy_parameters`).

    Args:
        model: any ``nn.Module`` (also ``torch.compile``d); its output, whatever its structure (tensor, tuple,
            dict, dataclass), goes to ``loss_fn`` as ``loss_fn(model(x), y)``.
        x: a batch of inputs: one tensor (``model(x)``), a tuple or list of tensors for a model with several
            inputs (``model(*x)``, e.g. ``(ids, mask)``) or a dict of tensors (``model(**x)``; ``model(x)`` when
            ``forward`` takes one argument that the keys do not name). Every tensor holds the examples along its
            first dimension; the checks slice them together. One tensor of a sequence-first model (``nn.RNN``/
            ``LSTM``/``GRU`` or ``nn.MultiheadAttention`` without ``batch_first=True``) may hold them along
            dimension 1, (T, B, ...), with one target per sequence or per position flattened to (T * B, ...) as
            the PyTorch language-model tutorial's ``get_batch`` gives them; a batch-first model's per-position
            targets may be flattened to (B * T, ...): the checks read a batch-first view of them
            (:mod:`~trainwell.doctor.batch_layout`). Only floating-point inputs are cast to float64 for
            the gradient check (integer ids and boolean masks stay); batch independence reads the gradient
            with respect to the floating-point inputs and replaces the other examples' integer or boolean inputs.
        y: the targets of the batch (the first ``examples`` are used; a seeded random ``examples`` of them, in
            their order, when the first ones all hold one target and the rest do not: a batch sorted by target):
            one tensor, or for a loss that takes several targets a tuple or list or dict of tensors with the
            examples along their first dimension (``loss_fn(out, (y_class, y_box))``); the checks slice it as
            they slice ``x`` and pass it to ``loss_fn`` in its own structure. Readings that need one tensor of
            class labels or of regression targets (accuracy, label range, constant or multi-hot targets) are
            left out or skipped then.
        loss_fn: a function (``F.cross_entropy``), an ``nn.Module`` loss (``nn.CrossEntropyLoss()``,
            ``nn.NLLLoss()``, ``nn.MultiMarginLoss()``, ``nn.MSELoss()``, ``nn.BCEWithLogitsLoss()``, ...) or any
            callable returning a scalar (or per-example) loss.
        penalty: ``penalty(model) -> scalar`` added to the data loss in training (L1/L2/activity/L0), if any.
        optimizer: your optimizer; its weight decay counts as an L2 penalty (1/2 wd ||w||^2). Never stepped.
        num_classes: the number of classes, if the data says more than the model's output width.
        examples: how many examples of ``x, y`` to use.

    Returns:
        A :class:`Report` (``.failed``, ``.warnings``, ``.status``, a rich table, ``.to_json()``).

    Raises:
        TypeError: if the arguments are not a module, tensors (``x``: or a tuple, list or dict of tensors) and a
            callable.
        ValueError: if ``x`` and ``y`` differ in length or hold fewer than 2 examples (also one (T, 1, ...)
            sequence of a sequence-first model), or the tensors of ``x`` (or of ``y``) differ in their first
            dimension.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"doctor.check: model is a {type(model).__name__}, not a torch.nn.Module")
    if _np is not None and isinstance(y, _np.ndarray):
        y = torch.as_tensor(y)
    x = as_bag_inputs(x, getattr(model, "_orig_mod", model))
    y = as_targets(y)
    if not callable(loss_fn):
        raise TypeError(f"doctor.check: loss_fn is a {type(loss_fn).__name__}, not callable: pass e.g. "
                        f"torch.nn.CrossEntropyLoss()")
    # a (T, B, ...) batch of a sequence-first model, or targets flattened over (examples, positions)
    x, y, loss_fn, view = read_batch_first(getattr(model, "_orig_mod", model), x, y, loss_fn)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"doctor.check: x has {len(x)} examples and y {len(y)}: give the same number, at least "
                         f"2{extra_bag_hint(x, y)}")
    if isinstance(y, Targets):  # the loss gets the targets' own tuple or dict, sliced as x is
        loss_fn = StructuredLoss(loss_fn)
    if penalty is not None and not callable(penalty):
        raise TypeError(f"doctor.check: penalty is a {type(penalty).__name__}: pass a callable penalty(model)")
    whole_x, whole_y = x, y
    x, y = x[:examples], y[:examples]
    if len(whole_y) > examples and one_value(y) and not one_value(whole_y):
        # the batch given is sorted by target (real samples, then fakes): its first examples would all be one target
        keep = torch.randperm(len(whole_y), generator=torch.Generator().manual_seed(0))[:examples].sort().values
        x, y = whole_x[keep], whole_y[keep]
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper shares its parameters with the original
    # (B, T, ...) and (T, B, ...) fit one target per example alike: batch independence reads both
    readings = example_readings(model, whole_x, whole_y) if view is None else []
    wd = _weight_decay(optimizer)
    materialize(model, x)  # lazy modules get their shapes as the loop's first forward would give them
    # module.compile()d: the checks' hooks and mode switches run on the uncompiled forward (no recompiles)
    with untouched(model, optimizer), torch.enable_grad(), uncompiled(model), full_precision(), \
            each_warning_once(), installed(model, view):  # also under no_grad
        total = _total_penalty(penalty, wd, model, x)
        replace = {}
        if readings:
            replace["batch independence"] = lambda s: check_independence(s.model, readings)
        if total is not None:  # the cs231n sanity check on the actual penalty: doubling it must raise the loss
            replace["regularization raises loss"] = lambda s: pf.regularization_raises_loss(
                s.model, s.x, s.y, s.loss_fn, penalty=lambda m, k: k * total(m), strengths=(1.0, 2.0))
        crash, out = runs_on_data(model, x, y, loss_fn)  # the loop's first batch would raise: said first, a fail
        crash = sequence_first_crash(model, x, y, crash, out) if view is None else crash
        if crash is not None and crash.status == "fail":
            whole, whole_out = whole_input_only(model, whole_x, whole_y, loss_fn, examples)
            if whole is not None:  # not the user's bug: the model needs all of its input at once
                crash, out, x, y = whole, whole_out, whole_x, whole_y
        bn_axis, crash = _guarded(batchnorm_axis_verdict, model, x, crash) or (None, crash)
        held = optimizer_holds(model, optimizer) if optimizer is not None else None
        ran = crash is None or crash.status != "fail"
        dropped = scores_dropout_verdict(_guarded(dropout_on_scores, model, x)) if ran else None
        normed = _guarded(scores_batchnorm_verdict, model, x, y, loss_fn, out) if ran and dropped is None else None
        activated = _guarded(scores_activation_verdict, model, x, y, loss_fn, out) \
            if ran and dropped is None and normed is None else None
        targets = _guarded(_target_verdict, model, x, y, loss_fn, out) if ran else None
        # also after the loss raised: what it was handed may say why (a negative variance)
        fed = _guarded(read_loss_inputs, loss_fn, out, y) if ran or out is not None else None
        padded = _guarded(padding_read, model, x) if ran else None
        axis = _guarded(scrambled_classes, loss_fn, out, y) if ran else None
        weighted = _guarded(check_pos_weight, loss_fn, out, y) if ran else None
        skips = doubled_skip_verdict(_guarded(doubled_skips, model, x)) if ran else None
        inputs_off = _guarded(input_scale_verdict, model, x) if ran else None
        groups = _guarded(check_norm_groups, model, x) if ran else None
        wiring = structure_verdicts(model, x) if ran else []
        inverted = _guarded(check_inverted_mask, model, x) if ran or out is not None else None
        opponent = (_guarded(opponent_parameters, model, x, y, loss_fn, optimizer) or 0) if ran else 0
        flattened, crash = _flattened(model, x, crash, replace) if ran else (None, crash)
        del out
        verdicts = [v for v in (crash, held, dropped, normed, activated, targets, fed, padded, inverted, axis,
                                weighted, skips, inputs_off, groups, bn_axis, *wiring) if v is not None] + pf.run_all(
            model, x, y, loss_fn, weight_decay=wd, num_classes=num_classes, penalty=total, replace=replace)
    if axis is not None:  # what cannot be fitted follows from the loss's axis: the advice says so
        verdicts = [type(v)(v.check, v.status, v.value, v.expected, f"the loss mixes positions and classes: fix "
                            f"'{axis.check}' first") if v.check in AXIS_BOUND and v.status == "fail" else v
                    for v in verdicts]
    verdicts = defer_to_norm_groups(defer_to_skips(verdicts, skips), groups)
    verdicts = defer_to_scores_batchnorm(verdicts, normed)
    verdicts = defer_to_inverted_mask(verdicts, inverted)
    verdicts = baseline_against_opponent(verdicts, opponent)
    verdicts = defer_to_unbounded(defer_to_vanishing(defer_to_input_scale(defer_to_data_scale(verdicts, x, y),
                                                                          inputs_off)))
    verdicts = defer_to_symmetry(defer_to_large_scores(verdicts))
    verdicts = name_sequence_first(verdicts, model, x, y) if view is None else verdicts
    verdicts = name_mixing_site(verdicts, model, x) if view is None else verdicts
    verdicts = no_grad_layers.defer(checkpointing.defer_to_cut(defer_to_constant_targets(verdicts)))
    if fed is not None and fed.status == "fail" and str(fed.value).startswith("F.ctc_loss"):
        # torch's CTC backward assumes log-probabilities: on anything else its gradient and every fit are off
        verdicts = [type(v)(v.check, v.status, v.value, v.expected, f"F.ctc_loss is not given log-probabilities: "
                            f"fix '{fed.check}' first") if v.status in ("fail", "warn") and v is not fed and
                    (v.check.startswith("gradient check") or v.check in AXIS_BOUND) else v for v in verdicts]
    verdicts = with_dropout_rate(defer_to_weights(verdicts, weighted), dropout_rate_verdict(model))
    verdicts = defer_to_structure(verdicts, wiring)
    verdicts = [*verdicts, *(v for v in (batchnorm_momentum_verdict(model),) if v is not None)]
    if crash is not None or flattened is not None:  # the checks that could not run met the user's own error
        verdicts = [type(v)(v.check, v.status, v.value, v.expected,
                            f"see '{(crash or flattened).check}'")
                    if v.status == "skip" and "could not run" in str(v.value) else v for v in verdicts]
    return Report(verdicts, f"trainwell doctor: {type(model).__name__}", ["pre"] * len(verdicts))


@contextlib.contextmanager
def each_warning_once():
    """While the checks run, show each warning (its category and text, numbers aside) once: the checks evaluate
    the user's loss hundreds of times, and every ``warnings.catch_warnings`` inside them resets Python's record of
    what was shown, so a deliberate broadcast warning of the user's loss was printed once per check. Torch's "None
    of the inputs have requires_grad=True" is not shown: the checks' forwards without gradients give it for every
    reentrant checkpointed segment (the forward with gradients that can name a fault records it itself)."""
    shown, show = set(), warnings.showwarning

    def once(message, category, filename, lineno, file=None, line=None):
        key = (category, re.sub(r"[0-9]+", "#", str(message)))  # one warning whatever the sizes in its text
        if key not in shown and not str(message).startswith(checkpointing.NO_GRAD_INPUTS):
            shown.add(key)
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = once
    try:
        yield
    finally:
        warnings.showwarning = show


def full_precision() -> contextlib.ExitStack:
    """A context in which every device's autocast is off: the checks judge the model and the loss in the
    precision of their weights, also when ``check`` is called inside ``torch.autocast`` (bfloat16 rounding would
    otherwise stop the overfit short of its floor and blur the gradient check's differences). How a loop's
    low-precision steps fare is ``doctor.watch``'s reading, not the pre-flight's."""
    stack = contextlib.ExitStack()
    for device in ("cpu", "cuda"):
        if torch.amp.is_autocast_available(device) and (device == "cpu" or torch.cuda.is_available()):
            stack.enter_context(torch.autocast(device_type=device, enabled=False))
    return stack


def _target_verdict(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable, out):
    """Multi-hot targets under cross-entropy, constant targets, an ignored real class (read on the model's output
    ``out``), regression targets the last activation cannot reach, a language model's targets wrong for it, a
    per-position loss that trains the padding, floating-point targets equal to one of the model's inputs, a target
    window that overlaps the input window, or regression targets in raw units (None: none of these)."""
    return multi_hot_targets(y, loss_fn, out) or constant_targets(y, loss_fn, out) or \
        ignored_class(loss_fn, out, y) or ignored_all_but_one(y, out) or \
        unreachable_targets(model, x, y, loss_fn) or sequence_targets(model, x, y, loss_fn, out) or \
        padded_loss(model, x, y, loss_fn, out) or echoed_targets(model, x, y) or overlapping_window(model, x, y) or \
        raw_unit_targets(y, loss_fn, out)


def _flattened(model: nn.Module, x: torch.Tensor | Inputs, crash: Verdict | None, replace: dict) -> tuple:
    """(the verdict on a forward that flattens the batch axis, or None; ``crash``). Where it is found, it stands
    for batch independence and a "whole input at once" note on ``crash`` is dropped: the checks that slice the
    batch meet the user's own shape error, not a model that needs all of its input."""
    flattened = _guarded(flattened_batch, model, x)
    if flattened is None:
        return None, crash
    replace["batch independence"] = lambda s: flattened
    return flattened, None if crash is not None and crash.status == "info" else crash


def _guarded(reading: Callable, *args):
    """``reading(*args)``, or None when it raises: a reading only adds a verdict (a model it cannot follow gets
    none from it); the checks below still run."""
    try:
        return reading(*args)
    except Exception:  # noqa: BLE001 - see the docstring
        return None


def _total_penalty(penalty, weight_decay: float, model: nn.Module, x: torch.Tensor | Inputs):
    """The user's penalty plus 1/2 wd ||w||^2. On the user's model it is evaluated after a training-mode forward
    (seeded, gradients on), so that activity penalties, which watch the forward pass, see what training sees;
    modes, buffers and RNG are restored by the caller's :class:`untouched`. On the checks' copies (the gradient
    check) no extra forward runs: it would move BatchNorm statistics between the two sides of a difference."""
    if penalty is None and not weight_decay:
        return None

    def total(m: nn.Module) -> torch.Tensor:
        value = torch.zeros(())
        if penalty is not None:
            if m is model:
                was = m.training
                m.train()
                with torch.enable_grad(), torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    call(m, x)
                m.train(was)
            value = value + penalty(m)
        if weight_decay:
            value = value + l2_penalty(m, weight_decay)
        return value

    return total
