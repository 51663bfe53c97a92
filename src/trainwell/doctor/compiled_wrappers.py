"""The ``torch.compile`` wrapper a watched model runs through when the loop calls the wrapper, not the model.

``compiled = torch.compile(model)`` makes an ``OptimizedModule`` that holds ``model`` as ``_orig_mod``: a loop
that watches ``model`` but calls ``compiled(x)`` runs the watch's hooks inside compiled code, where hooks added for
an observed step are never called and a hook that reads a tensor into a Python number breaks the graph. The
wrapper is found from the model through the objects that refer to it (the wrapper's ``_modules``, its
``__dict__``), so that the watch can run its observed steps through the uncompiled forward: one pass over the
objects the garbage collector tracks (about 10 ms), once per watch. Nothing is searched for while torch's compiler
was never imported (then nothing was compiled); the compiler is never imported here.

A model compiled while watched (``torch.compile(model)`` or ``model.compile()`` called inside the ``with`` block)
is seen as it is compiled: :class:`CompileCalls` replaces both while a watch is open and hands the watch each
compiled module that runs the model.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable

import torch
from torch import nn


def compiled_wrapper(model: nn.Module) -> nn.Module | None:
    """The ``torch.compile(model)`` wrapper made before now (the latest made, if several), or None."""
    if "torch._dynamo" not in sys.modules:  # torch.compile imports it: nothing was compiled
        return None
    found = None
    for modules in gc.get_referrers(model):  # the wrapper's submodules: {"_orig_mod": model}
        if not (isinstance(modules, dict) and modules.get("_orig_mod") is model):
            continue
        for attributes in gc.get_referrers(modules):  # the wrapper's __dict__
            if not (isinstance(attributes, dict) and attributes.get("_modules") is modules):
                continue
            for owner in gc.get_referrers(attributes):
                if isinstance(owner, nn.Module) and getattr(owner, "_orig_mod", None) is model:
                    found = owner
    return found


class CompileCalls:
    """Sees the compiles of one model between :meth:`start` and :meth:`stop` (several may be active at once):
    ``compiled(module)`` is called with ``torch.compile(model)``'s wrapper as it is made, or with the model once
    ``model.compile()`` compiled it in place. ``torch.compile`` and ``nn.Module.compile`` are replaced while any is
    active and put back when the last one stops."""

    _active: list[CompileCalls] = []
    _originals: tuple[Callable, Callable] | None = None

    def __init__(self, model: nn.Module, compiled: Callable[[nn.Module], None]) -> None:
        self.model, self.compiled = model, compiled

    def _saw(self, module) -> None:
        if module is self.model or (isinstance(module, nn.Module) and getattr(module, "_orig_mod", None) is self.model):
            self.compiled(module)

    def start(self) -> None:
        kind = CompileCalls
        if not kind._active:
            compile_function, compile_method = kind._originals = torch.compile, nn.Module.compile

            @functools.wraps(compile_function)
            def compile_seen(*args, **kwargs):
                result = compile_function(*args, **kwargs)
                for reader in list(kind._active):
                    reader._saw(result)
                return result

            @functools.wraps(compile_method)
            def compile_in_place_seen(module, *args, **kwargs):
                compile_method(module, *args, **kwargs)
                for reader in list(kind._active):
                    reader._saw(module)

            torch.compile, nn.Module.compile = compile_seen, compile_in_place_seen
        kind._active.append(self)

    def stop(self) -> None:
        kind = CompileCalls
        if self in kind._active:
            kind._active.remove(self)
            if not kind._active:
                torch.compile, nn.Module.compile = kind._originals
                kind._originals = None


__all__ = ["CompileCalls", "compiled_wrapper"]
