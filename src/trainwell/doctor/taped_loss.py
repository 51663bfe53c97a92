"""The loss ``doctor.check`` is given under ``trainwell watch --check`` when it is the script's own arithmetic (a
focal loss, label smoothing written out, a sum of terms): the torch calls the script made from the model's output
to the loss, on the first step, replayed on other outputs and targets.

A :class:`~torch.overrides.TorchFunctionMode` entered at the end of a training forward records each torch call
(function, arguments, result) until the ``backward()``. The calls the loss depends on, on the model's output or on
the target the loss saved in its graph (the batch's labels), are kept in their order; every other tensor they read
is a constant (a class-weight vector, a margin). The loss is rebuilt only when no such constant holds the batch's
rows (a padding mask computed from the inputs before the forward, another forward's output: they belong to that
batch alone), and when the replay on the recorded output and target gives the recorded loss: then the loss's value
and its gradient on any outputs are the script's. Python numbers the script read from the batch (``len(x)``, an
``.item()``) are kept as they were.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack
from torch.utils._pytree import tree_flatten, tree_map

from trainwell.doctor.func_transforms import transformed

#: calls recorded at most (a loss is a few dozen)
CALLS = 512


class _Tape(TorchFunctionMode):
    """Records the torch calls made while active (``off``: passes them through)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []
        self.off = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.off and len(self.calls) < CALLS and any(isinstance(t, torch.Tensor) for t in tree_flatten(out)[0]):
            self.calls.append((func, args, kwargs, out))
        return out


class TapedLoss:
    """The loss replayed: ``loss(out, y)`` runs the recorded calls on the output's tensors and the labels."""

    def __init__(self, calls: list[tuple], target: torch.Tensor, loss: torch.Tensor, leaf: dict):
        self._calls, self._target, self._loss, self._leaf = calls, target, loss, leaf
        self.casts = False  # the script's casts between floating-point types replayed (True: to compare values)

    def __call__(self, out, y):
        from trainwell.doctor import outputs as O

        given = O.leaves(out)
        env = {id(self._target): y, **{i: given[k] for i, k in self._leaf.items()}}
        for func, args, kwargs, result in self._calls:
            swap = lambda v: env.get(id(v), v) if isinstance(v, torch.Tensor) else v  # noqa: E731
            args, kwargs = tree_map(swap, args), tree_map(swap, kwargs)
            new = args[0] if not self.casts and _cast(func, args, kwargs) else func(*args, **kwargs)
            for old, now in zip(tree_flatten(result)[0], tree_flatten(new)[0], strict=True):
                if isinstance(old, torch.Tensor):
                    env[id(old)] = now
        return env[id(self._loss)]

    def replay_error(self, out, y) -> str | None:
        """Why the replay cannot score other rows: the error it raises on the output ``out`` of other rows and
        their labels ``y`` (a tensor of the first batch's size made inside the loss, ``torch.tensor(actions)`` of
        one episode's actions, is replayed as it was), or None when it runs."""
        try:
            with torch.no_grad():
                self(out, y)
        except Exception as error:  # noqa: BLE001 - any error: the replay is no loss for these rows
            return f"{type(error).__name__}: {error}"
        return None

    def __repr__(self) -> str:
        names = [getattr(f, "__name__", type(f).__name__) for f, *_ in self._calls]
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return f"the script's own ({len(names)} torch calls: {shown}), replayed from its first step"


class LossTape:
    """The tape of the torch calls after a training forward till the next forward or ``backward()``."""

    def __init__(self):
        self._mode: _Tape | None = None
        self.outputs: list = []

    def start(self, outputs: list) -> None:
        """A training forward ended with ``outputs`` (its tensors): the calls that follow are recorded."""
        self.stop()
        if all(type(m).__module__.startswith("trainwell.") for m in _get_current_function_mode_stack()):
            self._mode, self.outputs = _Tape(), outputs
            self._mode.__enter__()

    def stop(self) -> list[tuple]:
        """The recording ends (the mode is left where it is the last one entered, else it stays, passing every
        call through); the calls recorded."""
        mode, self._mode = self._mode, None
        if mode is None:
            return []
        mode.off = True
        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is mode:
            mode.__exit__(None, None, None)
        return mode.calls

    def loss(self, loss: torch.Tensor, target: torch.Tensor | None, rows: set) -> TapedLoss | None:
        """At the ``backward()`` from ``loss``: the loss replayed on the forward's outputs and ``target`` (the
        labels), or None (see the module docstring). ``rows``: the lengths of the batch's tensors (its inputs', its
        labels')."""
        outputs, calls = self.outputs, self.stop()
        made = {}
        for i, (_, _, _, result) in enumerate(calls):
            for t in tree_flatten(result)[0]:
                if isinstance(t, torch.Tensor):
                    made[id(t)] = i
        if target is None or id(loss) not in made:
            return None
        leaf = {id(t): k for k, t in enumerate(outputs)}
        needed, todo = set(), [made[id(loss)]]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            for t in tree_flatten((calls[i][1], calls[i][2]))[0]:
                if isinstance(t, torch.Tensor) and id(t) in made and made[id(t)] < i and id(t) not in leaf \
                        and t is not target:
                    todo.append(made[id(t)])
        kept = [calls[i] for i in sorted(needed)]
        for _, args, kwargs, _ in kept:
            for t in tree_flatten((args, kwargs))[0]:
                if isinstance(t, torch.Tensor) and id(t) not in made and id(t) not in leaf and t is not target and \
                        t.dim() and len(t) in rows:
                    return None  # a tensor of this batch's own (a mask, another forward's output)
        if not any(id(t) in leaf for _, a, k, _ in kept for t in tree_flatten((a, k))[0]):
            return None
        if any(_in_place(func, kwargs) for func, _, kwargs, _ in kept):
            return None  # a replay would write into the tensors it is given
        taped = TapedLoss(kept, target, loss, leaf)
        try:
            taped.casts = True
            with torch.no_grad():
                again = taped(_structure_of(outputs), target)
        except Exception:  # noqa: BLE001 - a replay that raises is no loss to check with
            return None
        finally:
            taped.casts = False
        same = isinstance(again, torch.Tensor) and again.shape == loss.shape and \
            torch.allclose(again.detach().double(), loss.detach().double(), rtol=1e-5, atol=1e-7)
        return taped if same else None


def _cast(func, args: tuple, kwargs: dict) -> bool:
    """A floating-point tensor cast to another floating-point type (``out.float()`` after an autocast forward):
    left in the type the check gives it (its gradient check runs in float64)."""
    name = getattr(func, "__name__", "")
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
        return False
    if name in ("float", "double", "half", "bfloat16"):
        return not kwargs and len(args) == 1
    rest = [*args[1:], *kwargs.values()]
    return name in ("to", "type") and bool(rest) and all(isinstance(v, torch.dtype) and v.is_floating_point
                                                          for v in rest)


def _in_place(func, kwargs: dict) -> bool:
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.endswith("__") or name.startswith("__i") or "out" in kwargs


class _Leaves(list):
    """The forward's tensors as the output (:func:`~trainwell.doctor.outputs.leaves` of a list is its items)."""


def _structure_of(outputs: list):
    return outputs[0] if len(outputs) == 1 else _Leaves(outputs)


__all__ = ["LossTape", "TapedLoss"]
