"""A policy-gradient term read from the loss's graph before ``backward()`` frees it.

REINFORCE (Williams 1992) and actor-critic methods (Sutton & Barto 2018, 13.4-13.5) minimize
``-mean_i log pi(a_i | s_i) x A_i``: the log-probability of the action each row took, times a weight that takes no
gradient (the return, or the advantage ``G_i - V(s_i)`` with the value detached). With a baseline the weights are
centred, of both signs by construction; without one they carry the rewards' sign (all negative under a per-step
penalty). No supervised loss weighs the log-probability of a label negatively: cross-entropy's weights (a mean,
class or sample weights) are never below 0.

With 3 classes or more the gradient alone shows such weights (:mod:`~trainwell.doctor.policy_gradient`); with 2
every zero-sum gradient fits any label with some weight, and a second head's term (a critic's squared error) hides
the sign in the loss's value. The graph says it directly: on the first steps a
:class:`~torch.overrides.TorchFunctionMode` sees each ``backward()`` call and walks its loss's graph while the
saved tensors are still held, for a product whose one factor is a log-probability picked per row (``gather`` or an
index of ``log_softmax``, of ``logits - logsumexp`` as ``Categorical(logits=...).log_prob`` makes it, the log of a
picked ``softmax``, or ``F.cross_entropy(..., reduction="none")``), or a Gaussian policy's log-density of the action
taken (``Normal(mu, sigma).log_prob(a)``: :func:`gaussian_log_density`), and whose other factor takes no gradient;
the term is a policy gradient when a tenth or more of that factor's size is negative.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import TRIES, FirstStepsReader
from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.registration import graph_nodes
from trainwell.doctor.validation_average import _backward

#: nodes that only reshape or copy a tensor between the picked log-probability and the product
_PASS = ("SqueezeBackward", "UnsqueezeBackward", "ViewBackward", "ReshapeAliasBackward", "UnsafeViewBackward",
         "CloneBackward", "ToCopyBackward", "ExpandBackward", "ClampBackward", "DivBackward")
#: nodes that pick one entry per row
_PICK = ("GatherBackward", "IndexBackward", "TakeAlongDimBackward")
#: the least share of the weights' size below 0 that reads as a policy gradient's signed weights
NEGATIVE_SHARE = 0.1
#: steps read at most while the loss holds weighted log-probabilities whose weights were not yet read as signed
MOST_STEPS = 16
#: autograd nodes walked per loss, at most
NODES = 20_000


def _name(node) -> str:
    return type(node).__name__


def _past(node, kinds: tuple = _PASS):
    """The first node below ``node`` (itself included) that is not one of ``kinds`` (through its first input)."""
    while node is not None and _name(node).startswith(kinds) and node.next_functions:
        node = node.next_functions[0][0]
    return node


def _log_probabilities(node) -> bool:
    """Whether ``node`` makes log-probabilities over the classes: ``log_softmax``, or ``x - logsumexp(x)``."""
    if node is None:
        return False
    if _name(node).startswith("LogSoftmaxBackward"):
        return True
    return _name(node).startswith("SubBackward") and \
        any(n is not None and _name(n).startswith("LogsumexpBackward") for n, _ in node.next_functions)


def picked_log_probability(node) -> bool:
    """Whether ``node`` (the differentiable factor of a product) is a log-probability picked per row: a picked
    entry of log-probabilities, the log of a picked (or picked after the log) softmax entry, or a cross-entropy
    left per row (``reduction="none"``)."""
    node = _past(node)
    if node is None:
        return False
    name = _name(node)
    if name.startswith("NllLossBackward"):
        return getattr(node, "_saved_reduction", None) == 0 and _log_probabilities(_past(node.next_functions[0][0]))
    if name.startswith("LogBackward"):  # log(softmax(z).gather(...))
        below = _past(node.next_functions[0][0])
        return below is not None and _name(below).startswith(_PICK) and \
            _name(_past(below.next_functions[0][0]) or node).startswith("SoftmaxBackward")
    if not name.startswith(_PICK):
        return False
    below = _past(node.next_functions[0][0])
    if below is not None and _name(below).startswith("LogBackward"):  # Categorical(probs=...).log_prob
        return _name(_past(below.next_functions[0][0]) or below).startswith("SoftmaxBackward")
    return _log_probabilities(below)


def _first_input(node):
    return node.next_functions[0][0] if node is not None and node.next_functions else None


def gaussian_log_density(node) -> bool:
    """Whether ``node`` (the differentiable factor of a product) is a Gaussian policy's log-density of the action
    each row took, as ``torch.distributions.Normal(mu, sigma).log_prob(a)`` makes it (summed over the action's
    dimensions or not, as ``Independent`` sums it), or written out: ``-(a - mu)^2 / (2 sigma^2) - log sigma - c``
    (or ``-0.5 ((a - mu) / sigma)^2 - ...``). Read: the log-scale and constants subtracted from the quadratic term,
    which negates (or scales) the square of a difference one of whose sides takes no gradient, the sampled action
    (a continuous action is the Gaussian's counterpart of the picked class; Sutton & Barto 2018, 13.7)."""
    node = _past(node, _PASS + ("SumBackward", "MeanBackward"))
    while node is not None and _name(node).startswith(("SubBackward", "AddBackward")):
        node = _first_input(node)  # the quadratic term first, the log-scale and the constant after it
    seen_sign = False
    while node is not None and _name(node).startswith(("NegBackward", "DivBackward", "MulBackward")):
        if _name(node).startswith("MulBackward0") and len(node.next_functions) == 2 and \
                all(n is not None for n, _ in node.next_functions):
            return False  # a product of two graphs: not a scaled square
        seen_sign = seen_sign or _name(node).startswith(("NegBackward", "MulBackward"))  # -x, or -0.5 * x
        node = _first_input(node) if _first_input(node) is not None else node.next_functions[-1][0]
    if not seen_sign or node is None or not _name(node).startswith("PowBackward0") or \
            getattr(node, "_saved_exponent", None) != 2:
        return False
    below = _past(_first_input(node), _PASS)  # (a - mu) / sigma divides before the square
    return below is not None and _name(below).startswith("SubBackward0") and len(below.next_functions) == 2 and \
        any(n is None for n, _ in below.next_functions)


def weighted_log_probabilities(loss: torch.Tensor) -> list[torch.Tensor]:
    """The weights (detached, flattened) of each product in ``loss``'s graph of a picked log-probability and a
    factor that takes no gradient, of two elements or more (a constant multiplier is not a weight per row). Read
    before ``backward()``: the graph's saved tensors are freed by it."""
    fn = getattr(loss, "grad_fn", None)
    found = []
    if fn is None:
        return found
    for node in graph_nodes([fn], limit=NODES):
        if not _name(node).startswith("MulBackward0") or len(node.next_functions) != 2:
            continue
        (left, _), (right, _) = node.next_functions
        if (left is None) == (right is None):
            continue
        factor, saved = (right, "_saved_self") if left is None else (left, "_saved_other")
        if not (picked_log_probability(factor) or gaussian_log_density(factor)):
            continue
        try:
            weights = getattr(node, saved)
        except RuntimeError:  # freed already (a backward through the graph before)
            continue
        if isinstance(weights, torch.Tensor) and weights.numel() >= 2 and weights.is_floating_point():
            found.append(weights.detach().reshape(-1).double().cpu())
    return found


def negative_share(weights: torch.Tensor) -> float:
    """The share of the weights' total size that lies below 0 (0 for weights of size 0)."""
    size = float(weights.abs().sum())
    return float(-weights[weights < 0].sum()) / size if size > 0 else 0.0


class _Backwards(TorchFunctionMode):
    """Reads the loss of each ``backward()`` call made while active."""

    def __init__(self):
        super().__init__()
        self.weights: list[torch.Tensor] = []
        self.read = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not transformed() and _backward(func) and args:
            first = args[0]
            loss = first[0] if isinstance(first, (list, tuple)) and first else first
            if isinstance(loss, torch.Tensor):
                self.read = True
                self.weights.extend(weighted_log_probabilities(loss))
        return func(*args, **(kwargs or {}))


class PolicyTerms(FirstStepsReader):
    """Reads the first steps' losses for a policy-gradient term (:meth:`start` after each ``w.step``,
    :meth:`finish` at the next): done once one is found, after :data:`~trainwell.doctor.first_steps.TRIES` steps
    whose losses hold no weighted log-probability, else after :data:`MOST_STEPS` (the first episodes' weights can
    all carry one sign before a critic learns)."""

    most = MOST_STEPS

    def __init__(self):
        super().__init__()
        self.weighted = 0  # steps whose loss held a weighted log-probability
        self.found: str | None = None

    def _new_mode(self) -> _Backwards:
        return _Backwards()

    def _done(self) -> bool:
        return self.found is not None or (self.tries >= TRIES and not self.weighted)

    def _keep(self, mode: _Backwards) -> None:
        if not mode.weights:
            return
        self.weighted += 1
        for w in mode.weights:
            share = negative_share(w)
            if share >= NEGATIVE_SHARE:
                self.found = (f"the loss multiplies the log-probability of one chosen class per row ({len(w)} rows) "
                              f"by weights that take no gradient, {share:.0%} of their size below 0 (a policy "
                              "gradient: -log pi(action) x advantage)")
                return

    def mark(self, steps: list[dict]) -> None:
        """Read the observed steps whose 2-class gradient could not tell its loss's form as a policy gradient's."""
        if self.found is None:
            return
        for s in steps:
            if s.get("form") == "two_classes":
                s["form"], s["policy_read"] = "signed_weights", self.found
