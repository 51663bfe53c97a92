"""What the model's scores pass through last: an activation after the last layer that bounds them (a Sigmoid,
Softmax or Tanh) or cuts them at 0 (a ReLU) feeding a loss that wants raw logits; dropout after the last layer;
a BatchNorm after the last layer.

``nn.CrossEntropyLoss`` applies its own log-softmax and ``nn.BCEWithLogitsLoss`` its own sigmoid: scores already
squashed into [0, 1] keep the loss far above 0 however well the classes are separated (softmax of scores in
[0, 1] over 4 classes is at most e / (e + 3) = 0.48), and a ReLU's zeros leave no way to push a wrong class
down. The model then cannot overfit a handful of examples although it classifies them all correctly.

A BatchNorm on the scores (``nn.Linear(64, C)`` then ``nn.BatchNorm1d(C)``) normalizes each class's score over
the batch in training, to mean beta and std |gamma| (1 at init): the scores' range grows only as fast as the
optimizer grows gamma (Adam moves it ~lr per step), which holds the loss up, and each example's scores depend on the
rest of its batch. On 4 separable blobs an MLP so ended, trained 10 epochs under Adam(1e-3), ends at a training
loss of 0.23-0.25 against 0.06-0.07 without it (3 seeds; gamma 1.25); SGD(0.05, momentum 0.9) grows gamma to 3.2
and reaches the same loss.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Sigmoid())
    >>> last_activation(model, torch.randn(16, 4))
    ('3', 'Sigmoid')
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.clamped_scores import clamped
from trainwell.doctor.forward import hooked_forward
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import loss_kind_read
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

#: activations whose output is bounded (or never negative): the range they leave the scores (lower, upper;
#: Hardtanh at its default bounds)
RANGES = {nn.Sigmoid: (0.0, 1.0), nn.Softmax: (0.0, 1.0), nn.Softmin: (0.0, 1.0), nn.Hardsigmoid: (0.0, 1.0),
          nn.Tanh: (-1.0, 1.0), nn.Hardtanh: (-1.0, 1.0), nn.ReLU6: (0.0, 6.0), nn.ReLU: (0.0, float("inf")),
          nn.Softplus: (0.0, float("inf"))}
_BOUNDED = {cls: "never negative" if high == float("inf") else f"in [{low:g}, {high:g}]"
            for cls, (low, high) in RANGES.items()}  # what each leaves of the scores, in words


def _producers(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module whose output *is* the model's scores (the tensor it returns, or the logits
    in its output structure), in call order, from one eval-mode forward; the model's modes are restored."""
    seen: list[tuple[str, nn.Module, object]] = []
    modules = dict(model.named_modules())
    with kept_modes(model):
        model.eval()
        hooked_forward(model, x, (nn.Module,), lambda name, _inp, out: seen.append((name, modules[name], out)))
    if not seen or seen[-1][0] != "":
        return []
    scores = O.logits(seen[-1][2])
    return [(name, module) for name, module, out in seen[:-1] if out is scores]


def last_activation(model: nn.Module, x: torch.Tensor | Inputs) -> tuple[str, str] | None:
    """(module name, class name) of the bounded activation (:data:`_BOUNDED`) whose output *is* the model's
    scores (the tensor it returns, or the logits in its output structure), or None. The model's modes are
    restored."""
    return next(((name, type(module).__name__) for name, module in _producers(model, x)
                 if isinstance(module, tuple(_BOUNDED))), None)


def dropout_on_scores(model: nn.Module, x: torch.Tensor | Inputs) -> str | None:
    """The name of a dropout module whose output *is* the model's scores (a Dropout after the last layer: in
    training it zeroes scores at random, so the loss reads noised logits and the model learns to inflate them),
    or None. The model's modes are restored."""
    return next((name for name, module in _producers(model, x)
                 if isinstance(module, nn.modules.dropout._DropoutNd)), None)


def batchnorm_on_scores(model: nn.Module, x: torch.Tensor | Inputs) -> tuple[str, str] | None:
    """(module name, class name) of a BatchNorm whose output *is* the model's scores (a BatchNorm after the last
    layer), or None. The model's modes are restored."""
    return next(((name, type(module).__name__) for name, module in _producers(model, x)
                 if isinstance(module, nn.modules.batchnorm._BatchNorm)), None)


def scores_batchnorm_verdict(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                             out) -> Verdict | None:
    """A warning when a loss that wants raw logits (``out``: the model's output on ``x``) gets scores that a
    BatchNorm after the last layer normalizes over the batch; None otherwise (an embedding ending in a BatchNorm
    under a metric loss is not read)."""
    loss = wants_logits(loss_fn, out, y)
    found = batchnorm_on_scores(model, x) if loss is not None else None
    if found is None:
        return None
    return scores_batchnorm_warning(*found, loss)


def scores_activation_verdict(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                              out) -> Verdict | None:
    """A warning naming the activation module (:data:`RANGES`: a Sigmoid, Tanh, ReLU, Softplus, ...) whose output
    is the scores that a loss wanting raw logits reads (``out``: the model's output on ``x``), with their range on
    this batch; None otherwise. A Softmax is left to the initial loss, which names probabilities."""
    loss = wants_logits(loss_fn, out, y)
    found = last_activation(model, x) if loss is not None else None
    scores = O.logits(out)
    if found is None or found[1] in ("Softmax", "Softmin") or scores is None or not scores.is_floating_point():
        return None
    name, kind = found
    module = next(cls for cls in _BOUNDED if cls.__name__ == kind)
    own = "sigmoid" if loss.startswith("BCE") else "softmax"
    return Verdict("output layer", "warn", f"the scores pass through {kind} module '{name}' last, so they are "
                   f"{_BOUNDED[module]} (here {float(scores.min()):.3g} to {float(scores.max()):.3g})",
                   "raw scores from the last layer", f"{loss} applies its own {own} to raw logits: an activation "
                   "after the last layer bounds them (the loss cannot fall far) or keeps them above 0 (its slope "
                   "vanishes where its input sinks below 0, a ReLU's is 0 there): remove that last activation")


def scores_batchnorm_warning(name: str, kind: str, loss: str, check: str = "output layer") -> Verdict:
    """The warning naming BatchNorm module ``name`` (class ``kind``) on the scores that ``loss`` (a loss that wants
    raw logits, in words) reads."""
    return Verdict(check, "warn", f"the scores pass through {kind} module '{name}' last: in training each "
                   "score is normalized over the batch, to mean beta and std |gamma| (1 at init)",
                   "raw scores from the last layer", f"{loss} then reaches low values only as fast as the optimizer "
                   "grows gamma (slowly under Adam), and each example's scores depend on the rest of its batch: "
                   "remove the BatchNorm after the last layer, or move it before that layer")


#: ``doctor.watch``'s name for what the scores pass through last
LOOP_NAME = "loop: output layer"


def watched_scores_batchnorm(found: tuple[str, str] | None, forms: list[str | None],
                             binary_reads: list) -> Verdict | None:
    """``doctor.watch``'s reading of a BatchNorm on the scores (``found``: its name and class, seen on an observed
    training step): a warning when the loss read from the gradient on every observed step wants raw logits
    (``forms``: a softmax cross-entropy, whatever its reduction or weight; ``binary_reads``: BCE with logits),
    whatever else the loss's own reading finds. None otherwise (a metric or regression loss on an embedding or a
    regressor ending in a BatchNorm: its outputs standardized over the batch are read as meant)."""
    if found is None:
        return None
    read = [f for f in forms if f is not None]
    if read and len(read) == len(forms) and all(f in ("cross_entropy", "two_classes") for f in read):
        loss = "cross-entropy"
    elif binary_reads and len(binary_reads) == len(forms) and \
            all(r is not None and r["on"] == "logits" for r in binary_reads):
        loss = "BCE with logits"
    else:
        return None
    return scores_batchnorm_warning(*found, loss, LOOP_NAME)


def defer_to_scores_batchnorm(verdicts: list, normed: Verdict | None) -> list:
    """With a BatchNorm on the scores (``normed``), the initial loss's warning or fail reads scores of std 1 per
    class over the batch: its advice names that layer instead of an init or a scaling after the last layer."""
    if normed is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"the scores are normalized over the batch after the "
                    f"last layer (std |gamma| = 1 at init): see '{normed.check}'")
            if v.check == "initial loss" and v.status in ("warn", "fail") else v for v in verdicts]


def wants_logits(loss_fn: Callable, out, y: torch.Tensor) -> str | None:
    """The loss's name when it takes raw logits (cross-entropy, BCE with logits, a custom loss that behaves like
    either); None otherwise."""
    kind = loss_kind_read(loss_fn, out, y)
    if kind == "cross_entropy":
        return "cross-entropy"
    if kind == "bce_logits":
        return "BCE with logits"
    return None


def bounded_scores(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> str | None:
    """A sentence when a loss that wants raw logits gets scores that an activation after the last layer bounds:
    the module by name, else (an activation applied in ``forward``) scores pinned at both ends of [0, 1] or
    [-1, 1], or never negative with many exact zeros; None otherwise (also when the model cannot be read: this
    only words advice). Meant for a model that was trained and still failed."""
    try:
        return _bounded_scores(model, x, y, loss_fn)
    except Exception:  # noqa: BLE001 - advice on a failed check must not turn that failure into a skip
        return None


def _bounded_scores(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> str | None:
    with torch.no_grad():
        out = call(model, x)
    loss = wants_logits(loss_fn, out, y)
    scores = O.logits(out)
    if loss is None or scores is None or not scores.is_floating_point():
        return None
    fix = f"{loss} needs raw logits (it applies its own {'sigmoid' if loss.startswith('BCE') else 'softmax'})"
    found = last_activation(model, x)
    if found is not None:
        name, kind = found
        module = next(cls for cls in _BOUNDED if cls.__name__ == kind)
        return (f"the model's scores pass through {kind} (module '{name}'), so they are {_BOUNDED[module]}: {fix}; "
                f"remove that last activation")
    # no module to name (an activation applied in forward): the trained scores pinned at both ends of [0, 1] or
    # [-1, 1], or never negative with many exact zeros; small unbounded scores (an untrained model's) are neither
    pinned = clamped(scores)
    if pinned is not None:
        return f"the trained model's scores are {pinned}: {fix}; remove the clamp"
    low, high = float(scores.min()), float(scores.max())
    for lo, hi, what in ((0.0, 1.0, "a sigmoid or softmax"), (-1.0, 1.0, "a tanh")):
        if lo <= low < lo + 0.05 and hi - 0.05 < high <= hi:
            return f"the trained model's scores all stay in [{lo:g}, {hi:g}] ({what} applied in forward?): {fix}"
    if low >= 0.0 and float((scores == 0).float().mean()) > 0.25:
        return f"the trained model's scores are never negative, many exactly 0 (a ReLU applied in forward?): {fix}"
    return None


def scores_dropout_verdict(name: str | None, check: str = "output layer") -> Verdict | None:
    """A fail naming dropout module ``name`` applied to the model's scores; None without one."""
    if name is None:
        return None
    return Verdict(check, "fail", f"the scores pass through dropout module '{name}' last",
                   "raw scores from the last layer", "dropout after the last layer zeroes scores at random in "
                   "training (the loss reads noised logits) and does nothing in eval: move it before the last layer")
