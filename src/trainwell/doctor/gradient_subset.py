"""Which examples the gradient check differentiates.

cs231n checks the gradient on a few examples (fewer units sit near a kink). A loss that compares examples with
each other can be exactly 0 on a few: a mined triplet loss (Schroff et al. 2015, FaceNet; Hermans et al. 2017,
"In defense of the triplet loss") has no positive pair among four examples of four classes, a contrastive loss
no negative one, a hinge loss no example inside its margin. Its gradient there is 0 for every weight, which is no
reading of vanishing gradients. The check then takes examples that share a label, else more of them, until the
data loss has a gradient; only when the whole batch given has none is the gradient itself vanishing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from trainwell.doctor.inputs import Targets


@dataclass
class Subset:
    """The examples chosen (``index`` into the batch); when they are not the first ``n``, why (``note``); whether
    the data loss is exactly 0 on the whole batch (``zero``)."""

    index: torch.Tensor
    note: str = ""
    zero: bool = False


def _sharing_labels(y: torch.Tensor, n: int) -> torch.Tensor | None:
    """``n`` examples in pairs of one label each (class-index targets), or None when no label repeats."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        return None
    chosen: list[int] = []
    for label in torch.unique(y).tolist():
        where = (y == label).nonzero().flatten().tolist()
        if len(where) >= 2:
            chosen += where[:2]
        if len(chosen) >= n:
            break
    return torch.tensor(sorted(chosen[:n])) if len(chosen) >= 2 else None


def _candidates(y: torch.Tensor | Targets, n: int, total: int) -> list[tuple[torch.Tensor, str]]:
    """The subsets to try, in order: the first ``n``, ``n`` sharing labels, then the first 2n, 4n, ... up to
    the whole batch."""
    found = [(torch.arange(min(n, total)), "")]
    shared = _sharing_labels(y, n)
    if shared is not None:
        found.append((shared, f"{len(shared)} examples in pairs that share a label"))
    size = 2 * n
    while size < total:
        found.append((torch.arange(size), f"the first {size} examples"))
        size *= 2
    if total > n:
        found.append((torch.arange(total), f"all {total} examples"))
    return found


def _reading(m: nn.Module, objective: Callable[[torch.Tensor], torch.Tensor], index: torch.Tensor) -> str:
    """'zero' when the data loss on ``index`` is exactly 0, 'flat' when it is not but no parameter gets a
    nonzero gradient from it, else 'gradient' (also for a loss that is not finite or does not run: the check
    itself reads those)."""
    m.zero_grad()
    try:
        value = objective(index)
        if not bool(torch.isfinite(value)):
            return "gradient"
        if float(value.detach()) == 0.0:
            return "zero"
        value.backward()
    except Exception:  # noqa: BLE001 - see the docstring
        return "gradient"
    found = any(bool(p.grad.abs().max() > 0) for p in m.parameters() if p.grad is not None and p.grad.numel())
    m.zero_grad()
    return "gradient" if found else "flat"


def informative_subset(m: nn.Module, objective: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor | Targets,
                       n: int, total: int) -> Subset:
    """The first ``n`` examples when the data loss has a gradient on them; else the first subset of
    :func:`_candidates` that has one (named in the note); else the first ``n``, with ``zero`` set when the loss
    is exactly 0 on the whole batch. ``objective(index)`` is the data loss on those examples."""
    tried = _candidates(y, n, total)
    first = _reading(m, objective, tried[0][0])
    if first == "gradient":
        return Subset(tried[0][0])
    last = first
    for index, how in tried[1:]:
        last = _reading(m, objective, index)
        if last == "gradient":
            return Subset(index, f"on {how}: the data loss is {'0' if first == 'zero' else 'flat'} on the first {n}")
    return Subset(tried[0][0], zero=last == "zero")
