"""Pre-flight: the optimizer given to :func:`trainwell.doctor.check` holds the model's trainable parameters. A
layer replaced (or added, or unfrozen) after the optimizer was built is never updated: ``model.head = nn.Linear(...)``
after ``SGD(model.parameters())`` trains only the old head's tensors, which the model no longer uses."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.registration import _group_names
from trainwell.doctor.verdict import Verdict

NAME = "optimizer holds the parameters"

#: torch's optimizers that raise "does not support sparse gradients" (SGD, Adagrad and SparseAdam take them)
DENSE_ONLY = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.NAdam, torch.optim.RAdam,
              torch.optim.Adamax, torch.optim.Adadelta)


def optimizer_holds(model: nn.Module, optimizer: torch.optim.Optimizer) -> Verdict | None:
    """None when every trainable parameter of ``model`` is in one of ``optimizer``'s param groups; else a fail
    naming the ones it misses (and how many tensors it holds that the model does not)."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    sparse = [f"{name}.weight" for name, m in model.named_modules()
              if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse and id(m.weight) in held]
    if sparse and isinstance(optimizer, DENSE_ONLY):
        kind = type(optimizer).__name__
        return Verdict(NAME, "fail", f"{kind} holds {_group_names(sparse)} of an embedding with sparse=True",
                       "an optimizer that takes sparse gradients for sparse embeddings",
                       f"{kind} raises on sparse gradients at its first step: give the sparse embeddings to "
                       "torch.optim.SparseAdam and the rest to Adam (doctor.watch takes the list of both), or build "
                       "the embedding with sparse=False")
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    if not missing:
        return duplicates_verdict(NAME, [optimizer], dict(model.named_parameters())) or \
            empty_group_verdict(NAME, [optimizer])
    own = {id(p) for p in model.parameters()}
    stale = sum(id(p) not in own for g in optimizer.param_groups for p in g["params"])
    also = f"; it holds {stale} tensors the model no longer has" if stale else ""
    return Verdict(NAME, "fail", f"the optimizer does not hold {_group_names(missing)}{also}",
                   "every trainable parameter in the optimizer",
                   "a layer replaced, added or unfrozen after the optimizer was built never trains: build the "
                   "optimizer after the final model (or optimizer.add_param_group({'params': ...}))")


def empty_groups(optimizers: list[torch.optim.Optimizer]) -> list[str]:
    """One phrase per param group that holds no parameter, e.g. ``param group 1 (lr 0.05)`` (its index in
    ``optimizer.param_groups``; the optimizer's number too when there are several)."""
    out = []
    for k, optimizer in enumerate(optimizers):
        for i, group in enumerate(optimizer.param_groups):
            if not group["params"]:
                of = f" of optimizer {k + 1}" if len(optimizers) > 1 else ""
                lr = group.get("lr")
                rate = f" (lr {float(lr):.3g})" if isinstance(lr, (int, float, torch.Tensor)) else ""
                out.append(f"param group {i}{of}{rate}")
    return out


def empty_group_verdict(name: str, optimizers: list[torch.optim.Optimizer]) -> Verdict | None:
    """A warn when a param group holds no parameter: the list that built it (``[p for n, p in
    model.named_parameters() if n.startswith("classifier")]``) matched nothing, so the layers it was meant for
    train at another group's rate (or not at all)."""
    empty = empty_groups(optimizers)
    if not empty:
        return None
    return Verdict(name, "warn", f"{', '.join(empty[:3])} holds no parameters: the filter that built it matched "
                   "nothing?", "every param group holds parameters",
                   "the layers it was meant for train at another group's settings: check the names it filters on "
                   "against model.named_parameters() (or drop the group)")


def duplicates_verdict(name: str, optimizers: list[torch.optim.Optimizer],
                       named: dict[str, torch.Tensor]) -> Verdict | None:
    """A fail when one tensor sits more than once in one optimizer's param groups: torch keeps every copy (with a
    warning), so ``step()`` applies that tensor's update once per copy. A list built per layer over a layer shared
    by several positions (``[p for m in model.layers for p in m.parameters()]`` with ``nn.ModuleList([block] *
    4)``) lists the shared weights once per position."""
    names = {id(p): n for n, p in named.items()}
    twice: dict[int, int] = {}
    for optimizer in optimizers:  # two optimizers may share a tensor on purpose, each stepping its own loss
        counts: dict[int, int] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                counts[id(p)] = counts.get(id(p), 0) + 1
        twice.update({i: max(k, twice.get(i, 0)) for i, k in counts.items() if k > 1})
    if not twice:
        return None
    listed = [names.get(i, "a tensor outside the model") for i in twice]
    most = max(twice.values())
    return Verdict(name, "fail", f"{_group_names(listed)} sit in the optimizer up to {most} times: each step "
                   f"updates them up to {most}x", "each parameter once in the optimizer",
                   "a parameter list built layer by layer repeats a layer shared by several positions: build the "
                   "optimizer on model.parameters() (it lists each tensor once)")
