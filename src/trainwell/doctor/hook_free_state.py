"""A watched module's pickled or deep-copied state without the doctor's own hooks.

``trainwell watch`` keeps its hooks on the script's model for the whole run, so a ``copy.deepcopy(model)`` (the
best checkpoint kept in memory, an EMA copy) or a ``torch.save(model, path)`` made by the script would copy them
too: the deep copy fails on a module object they reach, pickling on a weak reference, and a copy that worked would
call the watch from a model it does not read. :func:`hook_free` takes them out of the state ``nn.Module.
__getstate__`` gives; the script's own hooks stay.
"""

from __future__ import annotations

import functools

from trainwell.doctor.caller_warnings import relay, see_through


def _ours(hook) -> bool:
    """Whether a hook was registered by trainwell (a function or closure of its modules, or a method of one of its
    objects)."""
    func = hook.func if isinstance(hook, functools.partial) else hook
    owner = getattr(func, "__self__", None)
    func = getattr(func, "__func__", func)
    names = [getattr(func, "__module__", None) or "", type(owner).__module__ if owner is not None else ""]
    return any(n == "trainwell" or n.startswith("trainwell.") for n in names)


def hook_free(state: dict) -> dict:
    """``state`` (a module's ``__dict__`` copy) with trainwell's hooks left out of every hook table, and their ids
    out of the tables keyed by them (``_forward_hooks_with_kwargs``, ``_forward_hooks_always_called``, ...)."""
    dropped: set = set()
    out = dict(state)
    for key, table in state.items():
        if key.endswith("hooks") and isinstance(table, dict) and any(callable(h) and _ours(h) for h in table.values()):
            dropped |= {k for k, h in table.items() if callable(h) and _ours(h)}
            out[key] = type(table)((k, h) for k, h in table.items() if k not in dropped)
    if dropped:
        for key, table in state.items():
            if key.startswith("_") and "hooks_" in key and isinstance(table, dict):
                out[key] = type(table)((k, v) for k, v in table.items() if k not in dropped)
    return out


def hook_free_copies(original):
    """``nn.Module.__getstate__`` leaving the watch's hooks out: the script's ``copy.deepcopy(model)`` and
    ``torch.save(model, path)`` copy its model, not the watch."""
    @see_through
    def read(module):
        return hook_free(relay(original, module))
    return read


__all__ = ["hook_free", "hook_free_copies"]
