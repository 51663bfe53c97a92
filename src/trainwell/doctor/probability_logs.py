"""A loss that takes the log of a probability the model computed, and turns NaN when it rounds to 0 or 1.

A binary cross-entropy written out by hand, ``-(y * torch.log(p) + (1 - y) * torch.log(1 - p))`` with
``p = torch.sigmoid(z)``, is exact on paper and breaks in float32: ``sigmoid(z)`` rounds to 1.0 once z passes about
17, so ``log(1 - p)`` is ``log(0) = -inf``, ``0 * -inf`` is NaN, and the first example the model gets confidently
right ends the run. ``torch.log(torch.softmax(z, 1))`` does the same once a score leads by about 100. The loss curve
then reads as a learning rate too high (the loss "became nan"), and lowering it only postpones the step. The
log-domain forms never round: ``F.binary_cross_entropy_with_logits(z, y)`` (``F.logsigmoid(z)`` and
``F.logsigmoid(-z)``), ``F.log_softmax(z, 1)`` and ``F.cross_entropy(z, y)``.

Read from the first watched loss's autograd graph (its structure outlives ``backward()``): a ``log`` whose input
is a sigmoid's or softmax's output, or 1 minus it, with nothing between them that keeps it from 0 (a clamp, an
added epsilon). Named, as a fail, only when the training loss turned NaN or infinite.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.registration import graph_nodes
from trainwell.doctor.verdict import Verdict

NAME = "loop: log of a probability"
#: nodes that carry a 0 or a 1 through unchanged (reshapes and selections of the probabilities)
_CARRY = ("SqueezeBackward", "UnsqueezeBackward", "ViewBackward", "ReshapeAliasBackward", "UnsafeViewBackward",
          "SelectBackward", "IndexBackward", "GatherBackward", "SliceBackward", "TBackward", "PermuteBackward",
          "TransposeBackward", "CloneBackward", "ExpandBackward", "SqueezeBackward", "ToCopyBackward")
_SOURCES = {"SigmoidBackward": "sigmoid", "SoftmaxBackward": "softmax"}


def unguarded_log(loss) -> str | None:
    """The first unguarded log of a probability in ``loss``'s graph, written out (``log(1 - sigmoid(z))``), or
    None."""
    fn = getattr(loss, "grad_fn", None)
    if not isinstance(loss, torch.Tensor) or fn is None:
        return None
    for node in graph_nodes([fn], limit=20_000):
        if type(node).__name__.startswith("LogBackward"):
            found = _probability_under(node)
            if found is not None:
                return found
    return None


def _probability_under(log_node) -> str | None:
    """What the log reads, when it is a sigmoid's or softmax's output (or 1 minus it) carried unguarded."""
    complement = False
    f = log_node.next_functions[0][0] if log_node.next_functions else None
    for _ in range(12):
        if f is None:
            return None
        name = type(f).__name__
        source = next((v for k, v in _SOURCES.items() if name.startswith(k)), None)
        if source is not None:
            return f"log(1 - {source}(z))" if complement else f"log({source}(z))"
        inputs = [g for g, _ in f.next_functions]
        if name.startswith("RsubBackward"):  # 1 - p
            complement, f = True, inputs[0] if inputs else None
        elif name.startswith("SubBackward") and len(inputs) == 2 and inputs[0] is None:  # ones - p
            complement, f = True, inputs[1]
        elif name.startswith("AddBackward") and inputs and inputs[0] is not None and \
                type(inputs[0]).__name__.startswith("NegBackward"):  # -p + 1
            complement, f = True, inputs[0].next_functions[0][0]
        elif name.startswith(_CARRY) and inputs:
            f = inputs[0]
        else:
            return None  # a clamp, an epsilon added, a product: the probability is kept from 0 or changed
    return None


def probability_log_verdict(form: str | None, losses: list[float]) -> Verdict | None:
    """A fail naming the unguarded ``form`` when the training loss turned NaN or infinite; None otherwise."""
    if form is None:
        return None
    step = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if step is None:
        return None
    source = "sigmoid" if "sigmoid" in form else "softmax"
    fix = "F.binary_cross_entropy_with_logits(z, y) (or F.logsigmoid(z) and F.logsigmoid(-z))" \
        if source == "sigmoid" else "F.log_softmax(z, dim) (or F.cross_entropy(z, y))"
    rounds = "sigmoid(z) rounds to 1.0 once z passes about 17 in float32" if source == "sigmoid" else \
        "softmax(z) rounds to 0 or 1 once a score leads by about 100"
    return Verdict(NAME, "fail", f"the loss became {losses[step]} at step {step}; it takes {form} of the scores, "
                   f"which is log(0) = -inf once the probability rounds ({rounds})",
                   "a loss computed from the scores in the log domain",
                   f"not the learning rate: compute it from the scores z: {fix}, which never rounds to log(0)")


def defer_to_rounded_log(verdicts: list[Verdict]) -> list[Verdict]:
    """The non-finite monitors and a non-finite validation loss, which follow from a fired log-of-a-probability
    verdict, read as 'info' naming it."""
    if not any(v.check == NAME and v.status == "fail" for v in verdicts):
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{NAME}')", v.expected,
                    "the loss took log(0) of a probability rounded to 0 or 1: compute it from the scores first")
            if v.status == "fail" and (v.check.startswith("monitor: non-finite") or
                                       (v.check == "overfitting" and "not finite" in str(v.value))) else v
            for v in verdicts]
