"""The targets of pair losses, which read 1 as a similar pair and -1 as a dissimilar one.

``F.cosine_embedding_loss`` (``nn.CosineEmbeddingLoss``) takes 1 - cos for a target of 1 and max(0, cos - margin)
for -1, and nothing for any other value; ``F.margin_ranking_loss`` takes max(0, -y (x1 - x2) + margin), a
constant with no gradient for y = 0; ``F.hinge_embedding_loss`` adds both of its terms for a target that is
neither. Same-or-not labels made with ``(a == b).float()`` are 0/1: the dissimilar pairs then never push the
embeddings apart, and a Siamese encoder collapses to one direction while its loss falls. The calls are seen inside
the user's own loss with a :class:`~torch.overrides.TorchFunctionMode`: over one evaluation of it in
``doctor.check``, and over the first few steps of a watched loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.verdict import Verdict

#: each pair loss's name and the position of its target among the arguments
PAIR_LOSSES = {F.cosine_embedding_loss: ("cosine_embedding_loss", 2), F.margin_ranking_loss: ("margin_ranking_loss", 2),
               F.hinge_embedding_loss: ("hinge_embedding_loss", 1)}
#: what each does with a target of 0, which it reads as neither
_ZERO_TARGET = {"cosine_embedding_loss": "rows of 0 add nothing to the loss: those pairs are never pushed apart",
                "margin_ranking_loss": "rows of 0 add the constant margin and no gradient",
                "hinge_embedding_loss": "rows of 0 add both of its terms, neither a similar nor a dissimilar pair's"}


def pair_target(func, args: tuple, kwargs: dict | None) -> tuple[str, torch.Tensor] | None:
    """(the loss's name, its target) when ``func`` is a pair loss called with a tensor target; else None."""
    pair = PAIR_LOSSES.get(func)
    if pair is None:
        return None
    given = args[pair[1]] if len(args) > pair[1] else (kwargs or {}).get("target")
    return (pair[0], given.detach()) if isinstance(given, torch.Tensor) else None


def pair_target_verdict(loss: str, target: torch.Tensor, check: str = "loss input") -> Verdict | None:
    """A fail when pair loss ``loss`` is given targets other than 1 (a similar pair) and -1 (a dissimilar one);
    None when every target is 1 or -1."""
    if target.numel() == 0 or target.is_complex():
        return None
    other = (target != 1) & (target != -1)
    if not bool(other.any()):
        return None
    values = target.unique()
    shown = ", ".join(f"{v:g}" for v in values[:4].double().tolist()) + (", ..." if len(values) > 4 else "")
    zeros = f": {_ZERO_TARGET[loss]}" if bool((target == 0).any()) else ""
    return Verdict(check, "fail", f"F.{loss} is given targets {shown} ({float(other.double().mean()):.0%} neither 1 "
                   f"nor -1){zeros}", "targets of 1 (similar) and -1 (dissimilar)",
                   f"{loss} reads 1 as a similar pair and -1 as a dissimilar one: map 0/1 labels with "
                   "target = 2 * same - 1")


class _PairCalls(TorchFunctionMode):
    """Records the target of every pair-loss call made while it is active."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, torch.Tensor]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        found = pair_target(func, args, kwargs)
        if found is not None:
            self.seen.append(found)
        return func(*args, **(kwargs or {}))


class PairTargetReader(FirstStepsReader):
    """Reads the targets given to pair losses on the first steps of a watched loop (:meth:`start` after each
    ``w.step``, :meth:`finish` at the next)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, torch.Tensor]] = []

    def _new_mode(self) -> _PairCalls:
        return _PairCalls()

    def _done(self) -> bool:
        return bool(self.seen)

    def _keep(self, mode: _PairCalls) -> None:
        self.seen.extend(mode.seen)

    def verdict(self) -> Verdict | None:
        """``loop: loss input``'s fail for targets other than 1 and -1; None when all are."""
        for loss, target in self.seen:
            found = pair_target_verdict(loss, target, "loop: loss input")
            if found is not None:
                return found
        return None
