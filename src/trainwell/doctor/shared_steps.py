"""``loop: optimizers share parameters``: one tensor stepped by two optimizers on the same gradient.

A loop that trains a part of the model at a rate of its own builds a second optimizer for it (``head_opt =
SGD(model.head.parameters(), ...)``), and the first one on ``model.parameters()``, which holds that part too. Both
step after the one ``backward()``: the shared tensors get the update twice, from two momentum buffers, so their
effective rate is the sum of the two (torch's per-parameter-group options are the way to give a part its own
rate). Two optimizers may share a tensor on purpose when each steps after a backward of its own loss (an
alternating schedule): the shared tensor then holds a new gradient at each step.

Read by step pre-hooks on every optimizer the watch follows, for one tensor that two of them hold: at each step,
the gradient it holds (the tensor object, kept alive, and its version counter). A step by one optimizer on the very
gradient another optimizer's step already applied, unchanged (no ``backward()`` or ``zero_grad()`` since), is a
double update.
"""

from __future__ import annotations

import torch

from trainwell.doctor.registration import _group_names
from trainwell.doctor.verdict import Verdict

NAME = "loop: optimizers share parameters"
READS = 64  # steps read, at most
SHARE = 0.9  # of the gradients read, at least this many applied again by another optimizer
LEAST = 3  # such doubled steps, at least


class SharedSteps:
    """The steps of ``optimizers`` on a tensor that two of them hold, while :meth:`start`-ed."""

    def __init__(self, optimizers: list[torch.optim.Optimizer], named: dict[str, torch.Tensor]) -> None:
        self.optimizers, self.named = optimizers, named
        self.shared: list[str] = []  # the names of the tensors held by more than one optimizer
        self.judged = 0  # gradients read (steps on a gradient no step had applied before)
        self.doubled = 0  # steps on the gradient another optimizer's step had just applied, unchanged
        self._tensor: torch.Tensor | None = None  # the shared tensor read
        self._last: tuple | None = None  # (optimizer index, its .grad, that gradient's version) at the last step
        self._hooks: list = []

    def start(self) -> None:
        owners: dict[int, int] = {}
        for optimizer in self.optimizers:
            for i in {id(p) for g in optimizer.param_groups for p in g["params"]}:
                owners[i] = owners.get(i, 0) + 1
        names = {id(p): n for n, p in self.named.items()}
        shared = [i for i, k in owners.items() if k > 1]
        if len(self.optimizers) < 2 or not shared:
            return
        self.shared = [names.get(i, "a tensor outside the model") for i in shared]
        first = shared[0]
        self._tensor = next(p for o in self.optimizers for g in o.param_groups for p in g["params"] if id(p) == first)
        self._hooks = [o.register_step_pre_hook(lambda opt, args, kwargs, k=k: self._step(k))
                       for k, o in enumerate(self.optimizers)]

    def stop(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _step(self, k: int) -> None:
        grad = self._tensor.grad if self._tensor is not None else None
        if grad is None or self.judged >= READS or not any(
                p is self._tensor for g in self.optimizers[k].param_groups for p in g["params"]):
            return
        same = self._last is not None and self._last[1] is grad and self._last[2] == grad._version
        self.judged += not same
        self.doubled += same and self._last[0] != k
        self._last = (k, grad, grad._version)

    def verdict(self) -> Verdict | None:
        """A fail when nearly every gradient read was applied again by another optimizer's step; None
        when no tensor is shared, or each optimizer steps on a gradient of its own."""
        self._last = None  # the gradient tensor is not kept past the watch
        if self.doubled < LEAST or self.doubled < SHARE * self.judged:
            return None
        return Verdict(NAME, "fail", f"{_group_names(self.shared)} sit in two optimizers, and {self.doubled} of "
                       f"the {self.judged} gradients read were applied by both (no backward() between their steps): "
                       "those tensors are updated twice per step",
                       "each parameter stepped once per gradient",
                       "build the first optimizer without them ([p for n, p in model.named_parameters() if not "
                       "n.startswith('head.')]), or use one optimizer with a param group per rate")


__all__ = ["NAME", "SharedSteps"]
