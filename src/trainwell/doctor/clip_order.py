"""Gradient clipping in the wrong place of a step. ``clip_grad_norm_(model.parameters(), max_norm)`` belongs between
``loss.backward()`` and ``optimizer.step()``: called before ``backward()`` (right after ``zero_grad()``) it finds no
gradient yet (``.grad`` is None, or zeros) and clips nothing; called after ``optimizer.step()`` it clips the
gradient the step has already applied, which the next ``zero_grad()`` throws away. Either way every update is the
unclipped gradient's, the spikes clipping was written against included (Pascanu et al. 2013, "On the difficulty
of training recurrent neural networks": clipping bounds the step a rare steep gradient would take).

Read from ``torch.nn.utils.clip_grad_norm_``'s own clipping call (``torch.nn.utils.clip_grad._clip_grads_with_norm_``,
which it makes with the total norm it measured, however the loop imported it) while a watch is open, for the calls
whose parameters include the watched model's, the first :data:`READS` of them: the total norm it found (0: no
gradient yet) and whether the gradients it got are the very tensors, unchanged, that the last ``optimizer.step()``
left (no ``backward()`` since: clipping after the step). Where torch has no such function the reading is off.

A call handed no tensor at all clips nothing wherever it sits: ``params = model.parameters()`` is a generator, used
up by the optimizer built on it, so a later ``clip_grad_norm_(params, max_norm)`` finds it empty (torch warns once).
Those calls are counted apart (:data:`EMPTY_NAME`).
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: clipping order"
READS = 64  # clipping calls read, at most: each reads one gradient tensor's identity and keeps its total norm
SHARE = 0.9  # of the calls read, at least this many misplaced for a warning (a first step's own order passes)
#: the reading of clipping calls handed no tensor (a parameter generator the optimizer has used up)
EMPTY_NAME = "loop: clipping reaches the parameters"
FIX = ("call clip_grad_norm_ after loss.backward() and before optimizer.step() (under a GradScaler: after "
       "scaler.unscale_(optimizer))")


class _NormClips(ReadsCalls):
    """Every ``_clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)`` call, handed to the open
    :class:`ClipCalls` readers."""

    patched = (torch.nn.utils.clip_grad, "_clip_grads_with_norm_")

    def __init__(self, owner: ClipCalls) -> None:
        self.owner = owner

    def saw(self, parameters, max_norm=None, total_norm=None, *args, **kwargs) -> None:
        self.owner.read(parameters, kwargs.get("max_norm", max_norm), kwargs.get("total_norm", total_norm))


class ClipCalls:
    """The clipping calls on ``model``'s parameters while :meth:`start`-ed: how many, the total norms they found,
    and how many came after an optimizer step with no ``backward()`` since (``optimizers``' steps are hooked)."""

    def __init__(self, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        self.model, self.optimizers = model, optimizers
        self.calls = 0
        self.norms: list[torch.Tensor] = []  # the total norm each call read found (detached; read at report time)
        self.max_norms: list[float] = []
        self.empty = 0  # calls handed no tensor at all (a used-up generator)
        self.empty_max_norms: list[float] = []
        self.judged = 0  # calls read after an optimizer step had been seen
        self.stale = 0  # of those, calls that got the gradients the last optimizer step had applied, unchanged
        self._left: dict[int, tuple[int, int]] = {}  # id(parameter) -> (id(.grad), its version) after the last step
        self._reader = _NormClips(self)
        self._hooks: list = []
        self._ids: set[int] = set()

    def start(self) -> None:
        if not hasattr(*_NormClips.patched):  # a torch without it: nothing is read
            return
        self._ids = {id(p) for p in self.model.parameters()}
        self._reader.start()
        self._hooks = [o.register_step_post_hook(self._stepped) for o in self.optimizers]

    def stop(self) -> None:
        self._reader.stop()
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _stepped(self, optimizer, args, kwargs) -> None:
        """After a step, once clipping has been seen: which gradient tensor (and version) each parameter holds."""
        if not self.calls or len(self.norms) >= READS:
            return
        self._left = {id(p): (id(p.grad), p.grad._version) for g in optimizer.param_groups for p in g["params"]
                      if id(p) in self._ids and p.grad is not None}

    def read(self, parameters, max_norm, total_norm) -> None:
        params = [parameters] if isinstance(parameters, torch.Tensor) else parameters
        if len(self.norms) >= READS or not isinstance(params, list | tuple):
            return
        if not params and self.empty < READS:
            self.empty += 1
            self.empty_max_norms.append(float(max_norm))
            return
        watched = [p for p in params if id(p) in self._ids]
        if not watched or not isinstance(total_norm, torch.Tensor):
            return
        self.calls += 1
        self.norms.append(total_norm.detach())
        self.max_norms.append(float(max_norm))
        p = next((p for p in watched if p.grad is not None), None)
        if self._left and p is not None:
            self.judged += 1
            self.stale += self._left.get(id(p)) == (id(p.grad), p.grad._version)

    def verdict(self, step_norms: list[float]) -> Verdict | None:
        """A warning when nearly every clipping call read found no gradient while the optimizer steps had one
        (``step_norms``: the gradient norms the watch read at observed steps; ``info`` when none was above
        max_norm), or clipped what a step had already applied, some of it above max_norm (a call after the step
        that never clips only measures the norm, for a log); None when clipping was not seen or sat in its
        place."""
        reads = len(self.norms)
        if reads < 3:
            return self._empty_verdict(step_norms) if not reads else None
        norms = torch.stack([n.float().cpu() for n in self.norms])
        empty = int((norms == 0).sum())
        limit = min(self.max_norms)
        if empty >= SHARE * reads and any(n > 0 for n in step_norms):
            above = sum(n > limit for n in step_norms)
            return Verdict(NAME, "warn" if above else "info", f"clip_grad_norm_ found no gradient on {empty} of "
                           f"{reads} calls read (a total norm of 0) while optimizer.step() had one ({above} of "
                           f"{len(step_norms)} observed steps above max_norm = {limit:g}): it runs before "
                           "loss.backward(), so it clips nothing and every update is unclipped",
                           "clip_grad_norm_ between backward() and step()", FIX)
        above = int((norms > limit).sum())
        if self.judged >= 3 and self.stale >= SHARE * self.judged and above:
            # one whose gradients never exceed max_norm changes nothing (a norm measured after the step, for a log)
            return Verdict(NAME, "warn", f"clip_grad_norm_ ran after optimizer.step() on {self.stale} of "
                           f"{self.judged} calls read ({above} of them above max_norm = {limit:g}): it clips "
                           "gradients the step has already applied, which the next zero_grad() clears, so every "
                           "update is unclipped", "clip_grad_norm_ between backward() and step()", FIX)
        return None

    def _empty_verdict(self, step_norms: list[float]) -> Verdict | None:
        """A warning when every clipping call was handed no tensor (3 calls at least) while the optimizer steps had
        gradients above its max_norm (``info`` when none was above: nothing would have been clipped)."""
        if self.empty < 3 or not any(n > 0 for n in step_norms):
            return None
        limit = min(self.empty_max_norms)
        above = sum(n > limit for n in step_norms)
        return Verdict(EMPTY_NAME, "warn" if above else "info", f"clip_grad_norm_ was handed no tensor on all "
                       f"{self.empty} calls read while optimizer.step() had gradients ({above} of "
                       f"{len(step_norms)} observed steps above max_norm = {limit:g}): it clips nothing, and every "
                       "update is unclipped", "clip_grad_norm_ given the model's parameters",
                       "params = model.parameters() is a generator that the optimizer built on it used up: keep a "
                       "list (params = list(model.parameters())) or pass model.parameters() to clip_grad_norm_ "
                       "again")
