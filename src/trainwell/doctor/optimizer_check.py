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
        return None
    own = {id(p) for p in model.parameters()}
    stale = sum(id(p) not in own for g in optimizer.param_groups for p in g["params"])
    also = f"; it holds {stale} tensors the model no longer has" if stale else ""
    return Verdict(NAME, "fail", f"the optimizer does not hold {_group_names(missing)}{also}",
                   "every trainable parameter in the optimizer",
                   "a layer replaced, added or unfrozen after the optimizer was built never trains: build the "
                   "optimizer after the final model (or optimizer.add_param_group({'params': ...}))")
