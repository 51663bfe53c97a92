"""What the learning checks train and fit: a deep copy of the model trained with full-batch Adam, and outputs
fitted to the targets directly (the best constant output, or the lowest loss any outputs reach)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.forward import _training_forward
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_inputs import reads_log_probabilities
from trainwell.doctor.tied_outputs import tied_outputs
from trainwell.optim import build_optimizer
from trainwell.optim_eager import eager

BUDGET_FLOOR = 30
"""Steps a copy trained within a time budget takes at least (fewer only where it is asked for fewer)."""


def _train_copy(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable, steps: int, lr: float,
                seed: int, stop_below: float | None = None, every: int = 0,
                watch: Callable[[nn.Module], None] | None = None,
                budget_s: float | None = None, trace: list | None = None) -> tuple[nn.Module, float]:
    """Train a deep copy with full-batch Adam (the user's model and RNG untouched); returns it and the last loss.
    With ``stop_below``, training stops at the first loss below it, before that step's update: the copy returned
    has that loss.

    ``watch(copy)`` is called (under no_grad) every ``every`` steps, with dropout off and BatchNorm on batch
    statistics (:func:`_training_forward`); training stops there when it returns True.

    ``budget_s``: training also stops once that many seconds have passed, after :data:`BUDGET_FLOOR` steps at
    least (a large model on a CPU trains fewer than ``steps``; timed as it trains, rather than predicted from one
    more step of a copy).

    ``trace``: a list each step's loss is appended to.
    """
    tic = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = copy.deepcopy(model).train()
        trainable = [p for p in m.parameters() if p.requires_grad]
        if not trainable:
            return m.eval(), math.nan
        # Adam as fit builds it: torch's fused kernel where every parameter can take it (the pre-flight's training
        # copies were half optimizer time on a small model)
        sparse = {id(e.weight) for e in m.modules() if isinstance(e, nn.Embedding | nn.EmbeddingBag) and e.sparse}
        dense = [p for p in trainable if id(p) not in sparse]
        opts = ([build_optimizer(dense, "adam", lr=lr)] if dense else []) + \
            ([torch.optim.SparseAdam([p for p in trainable if id(p) in sparse], lr=lr)] if sparse & {
                id(p) for p in trainable} else [])  # a sparse embedding's gradients take SparseAdam
        final = math.nan
        for i in range(steps):
            loss = loss_fn(call(m, x), y)
            loss = loss.mean() if loss.dim() else loss
            final = float(loss.detach())
            if trace is not None:
                trace.append(final)
            if stop_below is not None and final < stop_below:  # the copy returned is the one that reached it:
                break  # one more step of Adam can overshoot (a loss near 0 is where its steps are relatively largest)
            for opt in opts:
                opt.zero_grad()
            loss.backward()
            for opt in opts:
                opt.step()
            if watch is not None and every and (i + 1) % every == 0:
                _training_forward(m)  # BatchNorm's running statistics lag far behind after a few steps
                with torch.no_grad():
                    enough = watch(m)
                m.train()
                if enough is True:
                    break
            if not math.isfinite(final):
                break
            if budget_s is not None and i + 1 >= BUDGET_FLOOR and time.perf_counter() - tic > budget_s:
                break
    return m.eval(), final


def _takes_probabilities(loss_fn: Callable) -> bool:
    """Whether the loss reads probabilities in (0, 1): torch's BCELoss, or a loss of unknown kind (a function the
    doctor does not recognise); not one that takes logits or a regression loss."""
    from trainwell.doctor.loss_kinds import loss_kind

    return isinstance(loss_fn, nn.BCELoss) or loss_fn is F.binary_cross_entropy or loss_kind(loss_fn) == "unknown"


def _sigmoid_last(model: nn.Module, x) -> bool:
    """Whether the model's scores leave through a Sigmoid (its outputs are probabilities in (0, 1))."""
    from trainwell.doctor.output_layer import last_activation  # output_layer reads fitting's helpers

    try:
        found = last_activation(model, x[:2])
    except Exception:  # noqa: BLE001 - an output this reading cannot follow: free outputs stay unbounded
        return False
    return found is not None and found[1] in ("Sigmoid", "Hardsigmoid")


#: autograd nodes that only reshape or copy a tensor: a sigmoid's output passed through them is still in (0, 1)
_RESHAPES = ("ViewBackward", "ReshapeAliasBackward", "UnsafeViewBackward", "SqueezeBackward", "UnsqueezeBackward",
             "PermuteBackward", "TransposeBackward", "CloneBackward", "ToCopyBackward", "SliceBackward",
             "SelectBackward")


def _made_by_sigmoid(t: torch.Tensor) -> bool:
    """Whether ``t`` is a sigmoid's output (``nn.Sigmoid`` or ``torch.sigmoid`` in forward), past reshapes."""
    fn = t.grad_fn
    while fn is not None and type(fn).__name__.startswith(_RESHAPES):
        fn = fn.next_functions[0][0]
    return fn is not None and type(fn).__name__.startswith(("SigmoidBackward", "HardsigmoidBackward"))


def _free_outputs(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable, per_example: bool,
                  max_iter: int = 100, unconstrained: int | None = None) -> Callable[[int], object]:
    """Outputs fitted to ``(x, y)`` directly, with the model's output structure, by L-BFGS on the user's loss:
    one constant per output tensor (``per_example=False``: the best any input-independent model can do; for
    cross-entropy the log of the label prior; outputs that one shared function computes from inputs of one
    kind, :mod:`~trainwell.doctor.tied_outputs`, share theirs), or a free output per example (``True``: the
    lowest loss any model can reach, e.g. the smoothed targets' entropy under label smoothing). Returns
    ``build(n)`` -> an output for ``n`` examples (only ``n = len(x)`` when per example). ``unconstrained``: the
    index of a floating-point output left free even if the model normalizes it. ``build.left_domain`` is True
    when the loss raised on the free outputs or the search overflowed (a Gaussian NLL's free variance stepped
    below 0, a mixture's likelihood unbounded below): the outputs are then the lowest-loss valid ones the search
    met (the starting ones if none), (else the model's own), an upper bound on the loss's floor, not the floor."""
    with torch.enable_grad():  # the graph shows which outputs leave through a sigmoid; dropped at once
        sample = call(copy.deepcopy(model).eval(), x if per_example else x[:1])
    squashed = [_made_by_sigmoid(t) for t in O.leaves(sample) if t.is_floating_point()]
    sample = O.map_tensors(sample, torch.Tensor.detach)
    floats = [t for t in O.leaves(sample) if t.is_floating_point()]
    axes = example_axes(model, x, len(floats))  # CTC's (T, B, C) log-probabilities hold the examples on axis 1
    # per example, the fit starts at the model's own outputs: zeros can be a stationary point of the loss (a VAE's
    # KL term at mu = log-variance = 0) from which L-BFGS never moves, even where the loss has no lowest value
    # outputs that are log-probabilities or probabilities (a LogSoftmax/Softmax last layer) stay normalized: NLL of
    # free numbers has no minimum; unit-norm rows (an embedding through F.normalize) stay on the unit sphere, where
    # a contrastive loss's logits are bounded by its temperature
    found = [(None, 1) if i == unconstrained else class_normalization(t, a)
             for i, (t, a) in enumerate(zip(floats, axes, strict=True))]
    norm, dims = [kind for kind, _ in found], [dim for _, dim in found]
    if any(kind is None for kind in norm) and reads_log_probabilities(loss_fn, sample, y if per_example else y[:1]):
        # free numbers given to CTC have no lowest loss: they stay log-probabilities over the classes' last axis
        norm = [kind or ("log" if t.dim() >= 3 else None) for kind, t in zip(norm, floats, strict=True)]
        dims = [dim if kind != "log" or t.dim() < 3 or dim != 1 else t.dim() - 1
                for kind, dim, t in zip(norm, dims, floats, strict=True)]
    free = [_starting_output(t, kind, a, per_example) for t, kind, a in zip(floats, norm, axes, strict=True)]
    fitted = _tie(free, {} if per_example else tied_outputs(model, x))
    if any(kind is None for kind in norm) and _takes_probabilities(loss_fn):
        # BCE on a sigmoid: free outputs in (0, 1) as the model's; in an output structure (a VAE's (recon, mu,
        # log-variance)) only the tensors a sigmoid makes, also torch.sigmoid in forward
        if not any(squashed) and _sigmoid_last(model, x):
            squashed = [True] * len(norm)
        norm = [kind or ("unit" if unit else None) for kind, unit in zip(norm, squashed, strict=True)]
    norm = [kind if t.dim() else None for kind, t in zip(norm, floats, strict=True)]  # a scalar is held as it is

    def build(n: int):
        it, kinds, classes, examples = iter(free), iter(norm), iter(dims), iter(axes)

        def make(t):
            v, kind, dim, a = next(it), next(kinds), next(classes), next(examples)
            # a scalar is the batch's: the same for any n
            v = v if per_example or t.dim() == 0 else v.unsqueeze(a).expand(*t.shape[:a], n, *t.shape[a + 1:])
            return v.log_softmax(dim) if kind == "log" else v.softmax(dim) if kind == "prob" else \
                v.sigmoid() if kind == "unit" else F.normalize(v, dim=-1) if kind == "sphere" else v

        return O.map_tensors(sample, make)

    opt = eager(torch.optim.LBFGS)(fitted, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    lowest: list = [math.inf, None]  # the lowest loss the fit met (not NaN), and its outputs

    def closure():
        opt.zero_grad()
        loss = loss_fn(build(len(x)), y)
        loss = loss.mean() if loss.dim() else loss
        loss.backward()
        value = float(loss.detach())
        if value < lowest[0]:  # NaN and +inf never are; -inf is the lowest
            lowest[:] = [value, [t.detach().clone() for t in free]]
        return loss

    left = False
    try:
        with torch.random.fork_rng(devices=[]):
            opt.step(closure)
    except Exception:  # noqa: BLE001 - the search left the outputs' valid domain (a variance below 0) or overflowed
        left = True
    for t in free:
        t.requires_grad_(False)
    build.left_domain = left  # type: ignore[attr-defined]
    with torch.no_grad():
        try:
            final = math.nan if left else float(_mean(loss_fn(build(len(x)), y)))
        except Exception:  # noqa: BLE001 - as above: the outputs the search ended on are outside the domain
            final, build.left_domain = math.nan, True  # type: ignore[attr-defined]
        if lowest[1] is not None and (math.isnan(final) or final == math.inf):
            # a loss that falls without bound overflows to NaN on its way down: the lowest it met is kept
            for t, value in zip(free, lowest[1], strict=True):
                t.copy_(value)
        elif lowest[1] is None and build.left_domain:  # type: ignore[attr-defined]
            # no valid outputs met (zeros can be outside the domain: a variance of 0): the model's own outputs
            for t, value in zip(free, floats, strict=True):
                t.copy_(torch.where(torch.isfinite(value), value, 0.0) if per_example or value.dim() == 0 else
                        value[0])
    return build


def _tie(free: list[torch.Tensor], tied: dict[int, int]) -> list[torch.Tensor]:
    """Each tied output (``tied``: its index -> an earlier one's, :mod:`~trainwell.doctor.tied_outputs`: one shared
    function of inputs of one kind, a ranking model's positive and negative scores) given the earlier one's free
    tensor, in place; returns the free tensors to fit (each once)."""
    for j, i in tied.items():
        free[j] = free[i]
    return [t for j, t in enumerate(free) if t.requires_grad and j not in tied]


def _starting_output(t: torch.Tensor, kind: str | None, axis: int, per_example: bool) -> torch.Tensor:
    """Where the fit of output ``t`` starts: the model's own outputs per example; a constant of zeros, or on the
    sphere the model's own first row (zeros have no direction to normalize). A scalar output is the batch's, not an
    example's (a mixture's load-balancing loss beside the scores): there is no example's output to fit, so it keeps
    the model's value and is not fitted (a free one would take any loss it adds down with it)."""
    if t.dim() == 0:
        return t.detach().clone()
    if per_example:
        return torch.where(torch.isfinite(t), t, 0.0).detach().clone().requires_grad_(True)
    if kind == "sphere":
        return t.select(axis, 0).detach().clone().requires_grad_(True)
    return torch.zeros(t.shape[:axis] + t.shape[axis + 1:], dtype=t.dtype, device=t.device, requires_grad=True)


def _mean(loss: torch.Tensor) -> torch.Tensor:
    """A loss as a scalar: the mean of a per-example loss."""
    return loss.mean() if loss.dim() else loss


def _normalization(t: torch.Tensor) -> str | None:
    """'log' if every row of ``t`` is a log-probability vector over dim 1, 'prob' if a probability vector,
    'sphere' if every row over the last dim has Euclidean norm 1 (an embedding through ``F.normalize``)."""
    if t.dim() < 2 or t.shape[1] < 2:
        return None
    if bool((t <= 1e-6).all()) and bool((t.logsumexp(1).abs() < 1e-4).all()):
        return "log"
    if bool((t >= 0).all()) and bool(((t.sum(1) - 1).abs() < 1e-4).all()):
        return "prob"
    return "sphere" if is_unit_norm(t) else None


def class_normalization(t: torch.Tensor, example_axis: int = 0) -> tuple[str | None, int]:
    """(kind, class axis): :func:`_normalization` over dim 1, or, where dim 1 holds the examples or is not
    normalized, 'log' or 'prob' over the last dim (CTC's (T, B, C) log-probabilities); (None, 1) when neither."""
    kind = _normalization(t) if example_axis != 1 else ("sphere" if is_unit_norm(t) else None)
    last = t.dim() - 1
    if kind in ("log", "prob") or t.dim() < 3 or last == example_axis or t.shape[last] < 2:
        return kind, 1
    if bool((t <= 1e-6).all()) and bool((t.logsumexp(last).abs() < 1e-4).all()):
        return "log", last
    if bool((t >= 0).all()) and bool(((t.sum(last) - 1).abs() < 1e-4).all()):
        return "prob", last
    return kind, 1


def example_axes(model: nn.Module, x: torch.Tensor | Inputs, count: int) -> list[int]:
    """The axis of examples of each of the ``count`` floating-point output tensors: 0, unless only another axis
    grows from 2 to 3 examples (the reading of :func:`~trainwell.doctor.batch_axis.batch_axis`)."""
    from trainwell.doctor.batch_axis import batch_axis

    if len(x) < 3:
        return [0] * count
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        pair, trio = ([t for t in O.leaves(call(m, x[:k])) if t.is_floating_point()] for k in (2, 3))
    if len(pair) != count or len(trio) != count:
        return [0] * count
    return [batch_axis(a, b, 3) for a, b in zip(pair, trio, strict=True)]


def is_unit_norm(t: torch.Tensor) -> bool:
    """Whether every row of ``t`` over its last dim (of 2+ entries) has Euclidean norm 1, to 1e-4."""
    return t.is_floating_point() and t.dim() >= 2 and t.shape[-1] >= 2 and t.numel() > 0 and \
        bool(((t.norm(dim=-1) - 1).abs() < 1e-4).all())
