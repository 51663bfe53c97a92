"""A compiled model's forward run uncompiled for a while: for the steps a hook observes.

``torch.compile`` and forward hooks added for a step or two - the doctor's monitors observe one step in N - do
not mix: a compiled forward does not call hooks registered after it was compiled (torch skips the guards on
nn-module hooks by default), so the monitor recorded no activations at all; hooks present when dynamo traces are
traced into the graph, and one that reads a value on the host (a statistic's ``float``) breaks it, each time they
change. Observed steps run the uncompiled forward instead: the hooks see the values (the compiled forward computes
the same function), and the compiled code never sees a hook.

Both ways of compiling a module are handled: ``module.compile()`` (the compiled call kept in
``module._compiled_call_impl``) and the ``torch.compile(module)`` wrapper (``OptimizedModule``, whose ``forward``
calls dynamo on ``_orig_mod``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn


def suspend_compiled(model: nn.Module) -> Callable[[], None]:
    """Make ``model`` and every compiled module in it run uncompiled; returns the function that compiles them
    back (call it once, when the observation ends). A model with nothing compiled is left as it is."""
    undo: list[Callable[[], None]] = []
    for m in model.modules():
        compiled = getattr(m, "_compiled_call_impl", None)
        if compiled is not None:
            m._compiled_call_impl = None
            undo.append(lambda m=m, compiled=compiled: setattr(m, "_compiled_call_impl", compiled))
        original = getattr(m, "_orig_mod", None)
        # torch.compile(module)'s wrapper, unless already suspended (a compiled submodule that two readers suspend
        # for overlapping steps: the second one keeps nothing, so that the first one's restore compiles it back)
        if isinstance(original, nn.Module) and "forward" in vars(m) and vars(m)["forward"] != original.__call__:
            forward = vars(m)["forward"]
            m.forward = original.__call__
            undo.append(lambda m=m, forward=forward: setattr(m, "forward", forward))

    def restore() -> None:
        for fn in reversed(undo):
            fn()
        undo.clear()

    return restore


@contextmanager
def uncompiled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside, ``model`` runs its uncompiled forward (:func:`suspend_compiled`); compiled again on exit, also on an
    exception."""
    restore = suspend_compiled(model)
    try:
        yield model
    finally:
        restore()


__all__ = ["suspend_compiled", "uncompiled"]
