"""The ``loop: symmetry`` fail: hidden units still identical after training (zero or constant initialization).

Hidden units with identical incoming weights compute the same function, receive the same gradient and stay
identical however long the loop trains (LeCun et al. 1998, Efficient BackProp; Goodfellow et al. 2016, 8.4): a
zero-initialized network trains its output bias alone. The pre-flight reads it at initialization
(:func:`~trainwell.doctor.activations.symmetry`); a watched loop reads it when the report is written, on the weights
the loop trained: a weight matrix (or filter bank) held by the watched optimizers whose rows (its units) are all still
equal after the loop's steps. The last weight matrix (the output layer, whose units have targets of their own) and
embeddings (rows looked up per token) are not read. A unit made identical on purpose at initialization (LoRA's zero
``B``, a zero-initialized last layer of a residual branch, a zero-initialized head) gets a gradient of its own per
unit and no longer is after the first steps.

Units that differ only by their biases (``nn.init.constant_(m.weight, 0.05)`` with the biases left at torch's
random draw) drift apart as training goes, but slowly: every unit of the layer starts as the same function of its
inputs. They are read as the loop began (:func:`constant_weights`: ``doctor.watch`` when it is created,
``trainwell watch`` at the script's first ``optimizer.step()``, before it updates them): a weight matrix, not the
last, whose every entry is one value other than 0 (a zero start is a deliberate zero branch, or is still identical
after training and read so)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from trainwell.doctor.activations import identical_rows, unit_weights
from trainwell.doctor.advice_voice import init_fix
from trainwell.doctor.verdict import Verdict

NAME = "loop: symmetry"
#: the fewest loop steps read before units still identical are named
STEPS = 10


def trained_symmetry(model: nn.Module, optimizers: list, steps: int) -> Verdict | None:
    """A fail naming the weights whose units (rows) are all identical after ``steps`` steps (at least
    :data:`STEPS`) of ``optimizers`` training ``model``; None when there are none (or fewer than two weight
    matrices: a single layer's units have different targets)."""
    if steps < STEPS:
        return None
    held = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
    weights = [(name, p) for name, p in unit_weights(model) if p.requires_grad and id(p) in held]
    same = []
    for name, p in weights[:-1]:
        w = p.detach().reshape(p.shape[0], -1)
        if bool(torch.isfinite(w).all()) and identical_rows(w, 1e-8 + 1e-6 * float(w.abs().max())):
            same.append(name)
    if not same:
        return None
    return Verdict(NAME, "fail", f"identical units in {', '.join(same)} after {steps} steps: every unit of the "
                   "layer has the same weights, so it gets the same gradient and stays the same",
                   "distinct hidden units", f"initialize weights randomly ({init_fix('he_normal')}); zero or "
                   "constant init never breaks the symmetry")


def constant_weights(params) -> list[tuple[int, str | None, float]]:
    """(tensor id, name, value) of each trainable floating-point weight tensor of two or more axes and two or more
    rows (units) among ``params`` ((name, tensor) pairs) whose every entry is one value other than 0."""
    found = []
    for name, p in params:
        if not isinstance(p, torch.Tensor) or is_lazy(p) or not p.is_floating_point() or p.dim() < 2 or \
                p.shape[0] < 2 or p.is_sparse or not p.requires_grad:
            continue
        with torch.no_grad():
            w = p.detach()
            value = float(w.reshape(-1)[0])
            if value != 0 and math.isfinite(value) and bool((w == value).all()):
                found.append((id(p), name, value))
    return found


def constant_init_verdict(found: list[tuple[int, str | None, float]] | None, model: nn.Module) -> Verdict | None:
    """A warning naming the weight matrices the loop began with every entry one value (``found``, read by
    :func:`constant_weights`), the model's last (the output layer's units have targets of their own) left out;
    None when none is left."""
    if not found:
        return None
    weights = unit_weights(model)
    last = id(weights[-1][1]) if weights else None
    names = {id(p): n for n, p in model.named_parameters()}
    order = list(names)
    kept = sorted(((key, name or names.get(key, "?"), value) for key, name, value in found if key != last),
                  key=lambda f: order.index(f[0]) if f[0] in names else len(order))
    if not kept:
        return None
    shown = ", ".join(f"'{name}' (every entry {value:.3g})" for _, name, value in kept[:3])
    more = f" and {len(kept) - 3} more" if len(kept) > 3 else ""
    return Verdict(NAME, "warn", f"{len(kept)} weight matrices start with every entry one value: {shown}{more}; every "
                   "unit of such a layer starts as the same function of its inputs, told apart only by its bias",
                   "distinct hidden units", f"initialize weights randomly ({init_fix('he_normal')}); "
                   "nn.init.constant_ on a weight matrix leaves its units alike")


#: the watch's warnings that identical units explain: units at 0 before a ReLU are never active, pass no gradient
#: to the weights before them, and give every row the same output whatever its inputs
FOLLOWS = ("loop: every trainable parameter learns", "loop: inputs reach the outputs", "monitor: dead ReLUs",
           "monitor: saturated units", "monitor: vanishing gradients")


def defer_to_symmetry(verdicts: list[Verdict]) -> list[Verdict]:
    """Where hidden units are still identical after training (the :data:`NAME` fail), the warnings that follow from
    it (:data:`FOLLOWS`) read as 'info' naming it: their own advice (a loss weight of 0, an EmbeddingBag's offsets,
    a lower learning rate) would point away from the init."""
    if not any(v.check == NAME and v.status == "fail" for v in verdicts):
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{NAME}')", v.expected,
                    f"fix '{NAME}' first: identical units compute the same function and get the same gradient (at 0 "
                    "before a ReLU, none): this reading follows from it")
            if v.check in FOLLOWS and v.status == "warn" else v for v in verdicts]


__all__ = ["constant_init_verdict", "constant_weights", "defer_to_symmetry", "trained_symmetry"]
