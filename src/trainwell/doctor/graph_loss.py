"""The loss ``doctor.check`` is given under ``trainwell watch --check``, rebuilt from the first loss's graph.

A script's loss is its own code; what the watch holds of it is the tensor ``backward()`` started from. Where that
tensor is one of torch's losses on the model's output (past reshapes and casts), its graph names the loss and keeps
its arguments: ``NllLossBackward0`` (after ``LogSoftmaxBackward0``: ``F.cross_entropy``) with its reduction,
``ignore_index`` and class weights, ``MseLossBackward0``, ``BinaryCrossEntropyWithLogitsBackward0`` with its
``weight`` and ``pos_weight``, ``SmoothL1LossBackward0``'s beta, ``HuberLossBackward0``'s delta; a ``reduction=
"none"`` loss averaged or summed by ``.mean()`` or ``.sum()`` reads as that reduction. The loss is rebuilt as the
``nn`` module of that name (a subclass that first picks the output the loss read, and flattens it as the script
did, ``out.view(-1, C)`` or ``out.squeeze(1)``): the pre-flight reads it as it reads the module given by hand
(:func:`~trainwell.doctor.loss_kinds.loss_kind`, its ``ignore_index``). Label smoothing's two terms
(``F.cross_entropy(..., label_smoothing=0.1)``: the NLL scaled by 1 - epsilon plus epsilon / C times the sum of
-log p over the classes, from one log-softmax) read as ``nn.CrossEntropyLoss(label_smoothing=epsilon)``. A loss of
another form (a focal loss, a sum of terms, a loss scaled by a constant) is not rebuilt: the reason is returned.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O

#: nodes between the model's output and the loss that only reshape or cast it
PASS_THROUGH = ("ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0", "SqueezeBackward0",
                "SqueezeBackward1", "SqueezeBackward2", "ToCopyBackward0", "CloneBackward0")
#: the loss nodes rebuilt: their module, and the saved arguments it takes (name in the module: name in the node)
LOSSES = {"NllLossBackward0": (nn.NLLLoss, {"ignore_index": "_saved_ignore_index", "weight": "_saved_weight"}),
          "NllLoss2DBackward0": (nn.NLLLoss, {"ignore_index": "_saved_ignore_index", "weight": "_saved_weight"}),
          "MseLossBackward0": (nn.MSELoss, {}),
          "BinaryCrossEntropyWithLogitsBackward0": (nn.BCEWithLogitsLoss, {"weight": "_saved_weight",
                                                                          "pos_weight": "_saved_pos_weight"}),
          "BinaryCrossEntropyBackward0": (nn.BCELoss, {"weight": "_saved_weight"}),
          "SmoothL1LossBackward0": (nn.SmoothL1Loss, {"beta": "_saved_beta"}),
          "HuberLossBackward0": (nn.HuberLoss, {"delta": "_saved_delta"})}
_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


class _Picked:
    """Mixed in before a torch loss module: the output the script's loss read (``leaf``: its index among the
    output's tensors, None for a tensor output), flattened to ``(-1, *tail)`` when ``tail`` is set."""

    leaf: int | None = None
    tail: tuple | None = None

    def forward(self, out, target):
        z = out if self.leaf is None else O.leaves(out)[self.leaf]
        if self.tail is not None:
            z = z.reshape(-1, *self.tail)
        return super().forward(z, target)


def _picked(cls: type, leaf: int | None, tail: tuple | None, kwargs: dict) -> nn.Module:
    loss = type(cls.__name__, (_Picked, cls), {"__module__": __name__})(**kwargs)
    loss.leaf, loss.tail = leaf, tail
    return loss


def _name(node) -> str:
    return type(node).__name__


def _ending(node, length: int = 3) -> str:
    """The last nodes of a graph, the loss's first: ``MeanBackward0 <- MulBackward0 <- PowBackward0``."""
    names = []
    while node is not None and len(names) < length:
        names.append(_name(node))
        node = node.next_functions[0][0] if node.next_functions else None
    return " <- ".join(names)


#: the nodes between label smoothing's term and its log-softmax: the sum over the classes (after the class weights),
#: its sign, the ignored targets masked, the sum or mean over the examples
_SMOOTHING_TERM = ("DivBackward0", "SumBackward0", "MaskedFillBackward0", "NegBackward0", "SumBackward1",
                   "MulBackward0", "MeanBackward0")


def _smoothed(node) -> tuple[float, object] | None:
    """(epsilon, the NLL node) when ``node`` is the sum torch's ``F.cross_entropy(..., label_smoothing=epsilon)``
    builds: ``(1 - epsilon) * nll(log_softmax(z))`` plus ``epsilon / C`` times the sum of ``-log_softmax(z)`` over
    the C classes, both terms from the same log-softmax; None for any other sum."""
    if len(node.next_functions) != 2 or any(n is None or _name(n) != "MulBackward1" for n, _ in node.next_functions):
        return None
    kept, spread = (n for n, _ in node.next_functions)
    nll = kept.next_functions[0][0]
    if nll is None or _name(nll) not in ("NllLossBackward0", "NllLoss2DBackward0"):
        return None
    log_p, term = nll.next_functions[0][0], spread.next_functions[0][0]
    while term is not None and term is not log_p and _name(term) in _SMOOTHING_TERM:
        term = term.next_functions[0][0]
    if term is not log_p or _name(log_p) != "LogSoftmaxBackward0":
        return None
    classes = log_p._saved_result.shape[log_p._saved_dim]
    epsilon = round(1.0 - float(kept._saved_other), 12)  # saved as the double 1 - epsilon
    if not 0.0 < epsilon <= 1.0 or abs(float(spread._saved_other) * classes - epsilon) > 1e-6 * max(1.0, epsilon):
        return None
    return epsilon, nll


def graph_loss(loss: torch.Tensor, outputs: list) -> tuple[nn.Module | None, str]:
    """(the loss module, its description) rebuilt from ``loss``'s graph, read before ``backward()`` frees it, on
    the model's ``outputs`` (the tensors of the forward's output, in :func:`~trainwell.doctor.outputs.leaves`'
    order); (None, why not) when the loss is not one of torch's losses on one of them."""
    node, outer = loss.grad_fn, None
    if _name(node) in ("MeanBackward0", "SumBackward0"):
        outer, node = ("mean" if _name(node).startswith("Mean") else "sum"), node.next_functions[0][0]
    smoothing = None
    if _name(node) == "AddBackward0":  # F.cross_entropy(..., label_smoothing=e): (1 - e) NLL + e/C sum(-log p)
        smoothing, node = _smoothed(node) or (None, node)
    if _name(node) not in LOSSES:
        return None, f"the loss is not one of torch's losses on the model's output (its graph ends in " \
            f"{_ending(loss.grad_fn)}: a loss written out, or a sum of terms)"
    cls, saved = LOSSES[_name(node)]
    kwargs = {key: getattr(node, attr) for key, attr in saved.items()}
    if isinstance(kwargs.get("ignore_index"), int) and kwargs["ignore_index"] >= 2 ** 63:
        kwargs["ignore_index"] -= 2 ** 64  # saved as an unsigned 64-bit integer: torch's -100 reads 2^64 - 100
    kwargs = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()
              if v is not None and not (k == "ignore_index" and v == -100)}
    reduction = _REDUCTIONS.get(node._saved_reduction, "mean")
    if outer is not None:
        target = node._saved_target
        ignored = "ignore_index" in kwargs and bool((target == kwargs["ignore_index"]).any())
        if reduction != "none" or (outer == "mean" and ("weight" in kwargs or ignored)):
            return None, f"the loss is {_name(node)}'s {reduction} {outer}: not one reduction of torch's loss"
        reduction = outer
    if reduction != "mean":
        kwargs["reduction"] = reduction
    given, shape = node.next_functions[0][0], tuple(node._saved_self.shape)
    if cls is nn.NLLLoss and _name(given) == "LogSoftmaxBackward0":
        if given._saved_dim not in (1, -1 + len(shape)) or (len(shape) > 2 and given._saved_dim != 1):
            return None, f"the loss's log-softmax is over dimension {given._saved_dim}, not the classes'"
        cls, given = nn.CrossEntropyLoss, given.next_functions[0][0]
        if smoothing is not None:
            kwargs["label_smoothing"] = smoothing
    ends = {t.grad_fn: i for i, t in enumerate(outputs) if isinstance(t, torch.Tensor) and t.grad_fn is not None}
    while given is not None and given not in ends and _name(given) in PASS_THROUGH:
        given = given.next_functions[0][0]
    if given not in ends:
        return None, f"the loss ({cls.__name__}) is not taken on the model's output (past reshapes: " \
            f"{_name(given) if given is not None else 'a tensor without a graph'} comes between)"
    leaf = ends[given] if len(outputs) > 1 else None
    out_shape = tuple(outputs[ends[given]].shape)
    tail = None
    if out_shape != shape:
        if len(shape) > len(out_shape) or out_shape[len(out_shape) - len(shape) + 1:] != shape[1:] or \
                outputs[ends[given]].numel() != torch.Size(shape).numel():
            return None, f"the loss reads the output {out_shape} as {shape}, not by flattening its first dimensions"
        tail = shape[1:]
    text = ", ".join(f"{k}={'tensor' if isinstance(v, torch.Tensor) else repr(v)}" for k, v in kwargs.items())
    where = (f" on output {leaf + 1} of {len(outputs)}" if leaf is not None else "") + \
        (f", the output flattened to {(-1, *tail)}" if tail is not None else "")
    return _picked(cls, leaf, tail, kwargs), f"nn.{cls.__name__}({text}){where}"


__all__ = ["graph_loss"]
