"""Weight penalties: L2 (1/2 lambda sum w^2), L1 (lambda sum |w|) and elastic net (both, same conventions).

One convention everywhere: the L2 term is 1/2 lambda sum w^2, so its gradient is lambda w (the weight-decay form)
and ``elastic_penalty(model, l1, l2)`` equals the config's ``regularize.l1 = l1, regularize.l2 = l2``.

Penalties apply to weights only (Linear and Conv weight matrices, any parameter with >= 2 dims), never to
biases or normalization parameters (the lecture; Goodfellow et al. 2016, sec. 7.1).

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1)
    >>> with torch.no_grad(): _ = layer.weight.fill_(2.0)
    >>> l2_penalty(layer, 0.5).item()  # 1/2 * 0.5 * (4 + 4)
    2.0
"""

from __future__ import annotations

import math
import numbers
import warnings
import weakref

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from trainwell.errors import ParameterError

# Normalization layers: their gammas and betas are never penalized.
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


NOT_WEIGHTS = "not_weights"
"""A module may list, in a class attribute of this name, parameters that are not weights (an L0 layer's gate
logits ``log_alpha``, an RBF layer's ``log_widths``): penalties and weight decay leave them alone."""


class SkippedLayersWarning(UserWarning):
    """A whole-model operation (:func:`max_norm_`, :func:`trainwell.init.apply`,
    :func:`trainwell.prune.magnitude_masks`) acts on Linear/Conv layers only, and the model also holds weight
    matrices in other layers (``nn.LSTM``, ``nn.Embedding``, ...): the message names them, since they were left
    as they were."""


def skipped_layers(model: nn.Module, handled: tuple[type, ...], in_place: bool = True) -> list[str]:
    """``"name (Type)"`` of each module of ``model`` that is not an instance of ``handled`` and holds weights of
    its own (parameters with >= 2 dims not listed in :data:`NOT_WEIGHTS`): an LSTM, an Embedding, a transposed
    convolution, ... With ``in_place`` (an operation that changes the weight tensors themselves), a weight tied to a
    handled layer's (an embedding shared with the output Linear) was acted on through that layer, so its module is
    not named; a mask (``in_place=False``) reaches only the handled layer, so the module is named."""
    found = []
    acted_on = {id(p) for m in model.modules() if in_place and isinstance(m, handled)
                for p in m.parameters(recurse=False)}
    for name, m in model.named_modules():
        if isinstance(m, handled):
            continue
        own = getattr(type(m), NOT_WEIGHTS, ())
        if any(p.dim() >= 2 and pname not in own and id(p) not in acted_on
               for pname, p in m.named_parameters(recurse=False)):
            found.append(f"{name or '(the model)'} ({type(m).__name__})")
    return found


def warn_skipped(model: nn.Module, handled: tuple[type, ...], what: str, advice: str, stacklevel: int = 4,
                 in_place: bool = True) -> list[str]:
    """Warn (:class:`SkippedLayersWarning`) that ``what`` left the weights of the modules :func:`skipped_layers`
    finds as they were; return their names. ``stacklevel`` 4 points at the caller of a function decorated with
    ``torch.no_grad()`` that calls this."""
    found = skipped_layers(model, handled, in_place)
    if found:
        warnings.warn(f"{what} acts on Linear/Conv layers only and left these weights as they were: "
                      f"{', '.join(found)}; {advice}", SkippedLayersWarning, stacklevel=stacklevel)
    return found


def check_strength(name: str, value) -> float:
    """``value`` as a float if it is a finite number >= 0 (a penalty's weight), else one clear error.

    Raises:
        TypeError: not a real number (a string, None, a bool, a tensor of several elements).
        ParameterError: a negative or non-finite number (a ``ValueError``).
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        number = float(value.detach())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(f"{name}={value!r} is not allowed: use a number >= 0 (the penalty's strength), got "
                        f"{type(value).__name__}")
    if not (math.isfinite(number) and number >= 0):
        raise ParameterError(name, value, "is not allowed: use a number >= 0 (the penalty's strength; a negative "
                                          "one would reward large weights)")
    return number


def _require_module(model, what: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} takes the model (an nn.Module: it sums over the model's weights), got "
                        f"{type(model).__name__}: call {what}(model, strength)")


def penalized_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Weights that a penalty or weight decay acts on: trainable parameters (``requires_grad``: a frozen layer's
    penalty would be a constant that no step can lower) with >= 2 dims, outside normalization layers, and not
    declared as non-weights by their module (see :data:`NOT_WEIGHTS`)."""
    _require_module(model, "penalized_parameters")
    skip = set()
    for m in model.modules():
        if isinstance(m, NORM_TYPES):
            skip.update(id(p) for p in m.parameters(recurse=False))
        for name in getattr(type(m), NOT_WEIGHTS, ()):
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter):
                skip.add(id(p))
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and id(p) not in skip]


def l2_penalty(model: nn.Module, strength: float) -> torch.Tensor:
    """1/2 * strength * sum of squared weights.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``strength`` is not a number.
        ValueError: ``strength`` is negative or not finite.
    """
    _require_module(model, "l2_penalty")
    check_strength("strength", strength)
    params = penalized_parameters(model)
    if not params:
        return torch.zeros(())
    return 0.5 * strength * sum((p * p).sum() for p in params)


def l1_penalty(model: nn.Module, strength: float) -> torch.Tensor:
    """strength * sum of absolute weights.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``strength`` is not a number.
        ValueError: ``strength`` is negative or not finite.
    """
    _require_module(model, "l1_penalty")
    check_strength("strength", strength)
    params = penalized_parameters(model)
    if not params:
        return torch.zeros(())
    return strength * sum(p.abs().sum() for p in params)


def elastic_penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor:
    """Elastic net (Zou & Hastie 2005): l1 * sum |w| + 1/2 * l2 * sum w^2.

    The L2 half uses this module's convention (1/2 lambda sum w^2, gradient lambda w), so
    ``elastic_penalty(m, a, b) == l1_penalty(m, a) + l2_penalty(m, b)``, the same loss as the config's
    ``regularize.l1 = a`` with ``regularize.l2 = b``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``l1``/``l2`` is not a number.
        ValueError: ``l1`` or ``l2`` is negative or not finite.
    """
    _require_module(model, "elastic_penalty")
    check_strength("l1", l1)
    check_strength("l2", l2)
    return l1_penalty(model, l1) + l2_penalty(model, l2)


_MAX_NORM_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def max_norm_(model: nn.Module, c: float) -> nn.Module:
    """Rescale each unit's incoming weight vector (a row of Linear.weight, a filter of Conv) to norm <= c
    (Srivastava et al. 2014, sec. 5.1; c ~ 3-4). Rows already inside the ball and all directions are unchanged.

    Only ``nn.Linear`` and ``nn.Conv1d/2d/3d`` weights are constrained; other layers with weight matrices
    (``nn.LSTM``, ``nn.Embedding``, ...) are left as they are, with a :class:`SkippedLayersWarning` naming them.
    Frozen weights (``requires_grad=False``, a pretrained backbone) are not trained, so not constrained either.
    """
    _require_module(model, "max_norm_")
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"c={c!r} is not allowed: use a number > 0 (the largest norm of a unit's incoming weights)")
    if not c > 0:
        raise ValueError(f"c={c} is not allowed: use a number > 0 (the largest norm of a unit's incoming weights)")
    for m in model.modules():
        if not isinstance(m, _MAX_NORM_LAYERS):
            continue
        pruned = hasattr(m, "weight_orig") and hasattr(m, "weight_mask")
        if not (m.weight_orig if pruned else m.weight).requires_grad:
            continue
        if pruned:
            # pruned (torch.nn.utils.prune): the forward pass uses weight_orig * mask; constrain that, by
            # scaling the rows of weight_orig, and refresh the cached product
            used = m.weight_orig * m.weight_mask
            norms = used.flatten(1).norm(dim=1).clamp_min(1e-12)
            scale = (c / norms).clamp(max=1.0).view(-1, *([1] * (used.dim() - 1)))
            m.weight_orig.mul_(scale)
            m.weight = m.weight_orig * m.weight_mask
        else:
            m.weight.copy_(torch.renorm(m.weight, 2, 0, c))
    warn_skipped(model, _MAX_NORM_LAYERS, "max_norm_", "constrain them yourself (torch.renorm on their rows)")
    return model


@torch.no_grad()
def count_nonzero(model: nn.Module) -> dict[str, float]:
    """L0 as a metric: nonzero effective weights of every Linear/Conv layer (after pruning masks and test-time
    L0 gates), their total, and the density."""
    nonzero = total = 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            w = m.effective_weight() if hasattr(m, "effective_weight") else m.weight
            nonzero += int((w != 0).sum())
            total += w.numel()
    return {"nonzero": nonzero, "total": total, "density": nonzero / max(total, 1)}


_STEP_HOOKS: list = []  # (a weak reference to a penalty, its global step hook's handle)


def _on_every_step(penalty: ActivityPenalty):
    """A global optimizer step post-hook that counts the steps of optimizers holding ``penalty``'s parameters;
    returns its handle. The penalty is held weakly: the hooks of penalties that are gone do nothing and are
    removed when the next one is made (not from inside a hook: torch is iterating over them then)."""
    for ref, handle in [h for h in _STEP_HOOKS if h[0]() is None]:
        handle.remove()
        _STEP_HOOKS.remove((ref, handle))
    ref = weakref.ref(penalty)

    def stepped(optimizer, args, kwargs) -> None:
        me = ref()
        if me is not None and any(id(p) in me._ids for group in optimizer.param_groups for p in group["params"]):
            me._steps += 1

    handle = register_optimizer_step_post_hook(stepped)
    _STEP_HOOKS.append((ref, handle))
    return handle


class ActivityPenalty:
    """lambda * sum_h o_h (1 - o_h) over the outputs of chosen sigmoid layers, averaged over the batch: zero for
    binary outputs, at most H/4 per example (pushes hidden units towards 0/1 codes).

    It watches the layers with forward hooks; call it after the forward pass of the step it penalizes: it covers
    the training forwards since its last call that ran with the model's current weights. An output computed before
    the weights last changed (a forward whose step never called the penalty, a pre-flight check's, whose weights
    were restored after it) belongs to no step of these weights and is dropped: its graph could not even be
    back-propagated once the weights it saved were changed. The weights count as changed when an optimizer that
    holds them steps (a global step hook: torch's fused kernels leave the tensors' version counters as they were)
    or when their version counters move (an in-place ``copy_``).
    """

    def __init__(self, model: nn.Module, strength: float, layer_types: tuple = (nn.Sigmoid,)):
        _require_module(model, "ActivityPenalty")
        check_strength("strength", strength)
        self.strength = strength
        self._params = list(model.parameters())
        self._ids = {id(p) for p in self._params}
        self._steps = 0  # optimizer steps over the model's parameters so far
        self._outputs: list[tuple[tuple, torch.Tensor]] = []  # (the weights' state when computed, the output)
        self._hooks = [m.register_forward_hook(self._keep) for m in model.modules() if isinstance(m, layer_types)]
        if not self._hooks:
            names = ", ".join(t.__name__ for t in layer_types)
            raise ValueError(f"ActivityPenalty: the model has no {names} layer to penalize: add one or pass "
                             f"layer_types= (config: model.activation = 'sigmoid')")
        self._hooks.append(_on_every_step(self))

    def _version(self) -> tuple[int, int]:
        """The weights' state: optimizer steps taken over them and the sum of their version counters (which grows
        whenever a weight is changed in place by an unfused kernel or a restore by ``copy_``)."""
        return self._steps, sum(p._version for p in self._params)

    def _keep(self, module: nn.Module, args, out: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():  # training forwards only, not evaluation passes
            self._outputs.append((self._version(), out))

    def __call__(self, model: nn.Module) -> torch.Tensor:
        now = self._version()
        outs, self._outputs = [o for v, o in self._outputs if v == now], []
        if not outs:
            return torch.zeros(())
        return self.strength * sum((o * (1 - o)).reshape(len(o), -1).sum(dim=1).mean() for o in outs)

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


class Penalty:
    """The sum of the configured penalties: L1, L2, binary activity and expected L0 (of hard-concrete layers,
    any module with an ``expected_l0()`` method). A model without parameters has nothing to penalize: its penalty
    is a zero tensor.

    Raises:
        TypeError: a strength that is not a number.
        ValueError: a negative or non-finite strength; ``l0 > 0`` without gated layers.
    """

    def __init__(self, model: nn.Module, l1: float = 0.0, l2: float = 0.0, activity: float = 0.0, l0: float = 0.0):
        _require_module(model, "Penalty")
        for name, value in (("l1", l1), ("l2", l2), ("activity", activity), ("l0", l0)):
            check_strength(name, value)
        self.l1, self.l2, self.l0 = l1, l2, l0
        self.activity = ActivityPenalty(model, activity) if activity > 0 else None
        self.gated = [m for m in model.modules() if hasattr(m, "expected_l0")]
        if l0 > 0 and not self.gated:
            raise ValueError(f"Penalty(l0={l0}) needs hard-concrete gated layers (trainwell.nn.l0.L0Linear, "
                             f"L0Conv1d/2d) in the model: it has none (config: set model.l0 = true)")

    @property
    def active(self) -> bool:
        return bool(self.l1 or self.l2 or self.activity or (self.l0 and self.gated))

    def __call__(self, model: nn.Module) -> torch.Tensor:
        # a model without parameters has nothing to penalize: the penalty is 0 (on the CPU)
        first = next(model.parameters(), None)
        total = torch.zeros((), device=first.device if first is not None else "cpu")
        if self.l1:
            total = total + l1_penalty(model, self.l1)
        if self.l2:
            total = total + l2_penalty(model, self.l2)
        if self.activity is not None:
            total = total + self.activity(model)
        if self.l0:
            total = total + self.l0 * sum(m.expected_l0() for m in self.gated)
        return total
