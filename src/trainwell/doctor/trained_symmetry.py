"""The ``loop: symmetry`` fail: hidden units still identical after training (zero or constant initialization).

Hidden units with identical incoming weights compute the same function, receive the same gradient and stay
identical however long the loop trains (LeCun et al. 1998, Efficient BackProp; Goodfellow et al. 2016, 8.4): a
zero-initialized network trains its output bias alone. The pre-flight reads it at initialization
(:func:`~trainwell.doctor.activations.symmetry`); a watched loop reads it when the report is written, on the weights
the loop trained: a weight matrix (or filter bank) held by the watched optimizers whose rows (its units) are all still
equal after the loop's steps. The last weight matrix (the output layer, whose units have targets of their own) and
embeddings (rows looked up per token) are not read. A unit made identical on purpose at initialization (LoRA's zero
``B``, a zero-initialized last layer of a residual branch, a zero-initialized head) gets a gradient of its own per
unit and no longer is after the first steps."""

from __future__ import annotations

import torch
from torch import nn

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


__all__ = ["defer_to_symmetry", "trained_symmetry"]
