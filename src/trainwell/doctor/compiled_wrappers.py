"""The ``torch.compile`` wrapper a watched model runs through when the loop calls the wrapper, not the model.

``compiled = torch.compile(model)`` makes an ``OptimizedModule`` that holds ``model`` as ``_orig_mod``: a loop
that watches ``model`` but calls ``compiled(x)`` runs the watch's hooks inside compiled code, where hooks added for
an observed step are never called and a hook that reads a tensor into a Python number breaks the graph. The
wrapper is found from the model through the objects that refer to it (the wrapper's ``_modules``, its
``__dict__``), so that the watch can run its observed steps through the uncompiled forward: one pass over the
objects the garbage collector tracks (about 10 ms), once per watch. Nothing is searched for while torch's compiler
was never imported (then nothing was compiled); the compiler is never imported here.
"""

from __future__ import annotations

import gc
import sys

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


__all__ = ["compiled_wrapper"]
