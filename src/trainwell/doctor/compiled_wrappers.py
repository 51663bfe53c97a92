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
compiled module that runs the model. A loop that took the function under another name before the watch
(``from torch import compile``, ``compile_fn = torch.compile``) reaches the wrapper class's constructor all the
same: ``OptimizedModule.__init__`` is wrapped too while a watch is open, at once if torch's compiler is imported,
else as soon as that compile imports it (a finder on ``sys.meta_path`` that acts on that one module only).
"""

from __future__ import annotations

import functools
import gc
import importlib.abc
import sys
import weakref
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.caller_warnings import relay, see_through


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


#: the module that defines the wrapper class ``torch.compile`` returns for a module
_WRAPPERS_MODULE = "torch._dynamo.eval_frame"


class _WrapperClassImport(importlib.abc.MetaPathFinder):
    """On ``sys.meta_path`` while watched and torch's compiler is not imported: when :data:`_WRAPPERS_MODULE` is
    first imported (by a compile), ``loaded(module)`` is called once it has run. Other modules are not touched."""

    def __init__(self, loaded: Callable) -> None:
        self.loaded = loaded

    def find_spec(self, fullname, path, target=None):
        if fullname != _WRAPPERS_MODULE:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if finder is not self and find is not None else None
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenCall(spec.loader, self.loaded)
                return spec
        return None


class _ThenCall(importlib.abc.Loader):
    """A module's own loader, then ``loaded(module)``; everything else is the loader's."""

    def __init__(self, loader, loaded: Callable) -> None:
        self.loader, self.loaded = loader, loaded

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        self.loaded(module)

    def __getattr__(self, name):  # get_source, get_filename, is_package... for tracebacks and inspect
        return getattr(self.loader, name)


class CompileCalls:
    """Sees the compiles of one model between :meth:`start` and :meth:`stop` (several may be active at once):
    ``compiled(module)`` is called with ``torch.compile(model)``'s wrapper as it is made (once per wrapper), or
    with the model once ``model.compile()`` compiled it in place; likewise for a submodule of the model
    (``model.encoder.compile()``, or ``torch.compile(model.encoder)``'s wrapper, before the loop puts it in the
    model's place). ``torch.compile``, ``nn.Module.compile`` and the
    wrapper class's ``__init__`` are replaced while any is active and put back when the last one stops."""

    _active: list[CompileCalls] = []
    _originals: tuple[Callable, Callable] | None = None
    _wrapper_init: tuple[type, Callable] | None = None  # (OptimizedModule, its own __init__) while replaced
    _finder: _WrapperClassImport | None = None

    def __init__(self, model: nn.Module, compiled: Callable[[nn.Module], None]) -> None:
        self.model, self.compiled = model, compiled
        self._reported: weakref.WeakSet = weakref.WeakSet()  # the wrappers handed over

    def _saw(self, module) -> None:
        if not isinstance(module, nn.Module):
            return
        original = getattr(module, "_orig_mod", None)
        if module is self.model or (original is not None and module not in self._reported and
                                    any(original is m for m in self.model.modules())):
            if original is not None:
                self._reported.add(module)
            self.compiled(module)
        elif original is None and any(module is m for m in self.model.modules()):  # a submodule compiled in place
            self.compiled(module)

    def start(self) -> None:
        kind = CompileCalls
        if not kind._active:
            compile_function, compile_method = kind._originals = torch.compile, nn.Module.compile

            @see_through
            @functools.wraps(compile_function)
            def compile_seen(*args, **kwargs):
                result = relay(compile_function, *args, **kwargs)
                for reader in list(kind._active):
                    reader._saw(result)
                return result

            @see_through
            @functools.wraps(compile_method)
            def compile_in_place_seen(module, *args, **kwargs):
                relay(compile_method, module, *args, **kwargs)
                for reader in list(kind._active):
                    reader._saw(module)

            torch.compile, nn.Module.compile = compile_seen, compile_in_place_seen
            if _WRAPPERS_MODULE in sys.modules:
                _wrap_init(sys.modules[_WRAPPERS_MODULE])
            else:
                kind._finder = _WrapperClassImport(_wrap_init)
                sys.meta_path.insert(0, kind._finder)
        kind._active.append(self)

    def stop(self) -> None:
        kind = CompileCalls
        if self in kind._active:
            kind._active.remove(self)
            if not kind._active:
                torch.compile, nn.Module.compile = kind._originals
                kind._originals = None
                if kind._finder is not None:
                    if kind._finder in sys.meta_path:
                        sys.meta_path.remove(kind._finder)
                    kind._finder = None
                if kind._wrapper_init is not None:
                    wrapper, init = kind._wrapper_init
                    wrapper.__init__ = init
                    kind._wrapper_init = None


def _wrap_init(module) -> None:
    """Replace ``OptimizedModule.__init__`` in torch's compiler ``module`` (while a :class:`CompileCalls` is
    active) so that each wrapper made is handed to the active readers."""
    kind = CompileCalls
    wrapper = getattr(module, "OptimizedModule", None)
    if not kind._active and kind._originals is None or wrapper is None or kind._wrapper_init is not None:
        return
    init = wrapper.__dict__["__init__"]

    @see_through
    @functools.wraps(init)
    def init_seen(self, *args, **kwargs):
        relay(init, self, *args, **kwargs)
        for reader in list(kind._active):
            reader._saw(self)

    wrapper.__init__ = init_seen
    kind._wrapper_init = (wrapper, init)


__all__ = ["CompileCalls", "compiled_wrapper"]
