"""Warnings raised inside a torch method the doctor wraps, pointed at the user's line that called the method.

The doctor reads a loop by replacing some torch methods with wrappers (``LRScheduler.step``, ``Tensor.backward``,
``torch.nn.init``'s functions, ...). Torch points its warnings at the line that called the method
(``warnings.warn(..., stacklevel=2)``; a C++ warning at the Python line that called into it): under a wrapper
that line is the wrapper's, so torch's "Detected call of `lr_scheduler.step()` before `optimizer.step()`" named
a file of the doctor instead of the user's script.

A wrapper calls the original method through :func:`relay`, and is marked :func:`see_through` (as is any wrapper
between it and the user's call). While :func:`relay` runs, a warning that points at one of those frames is given
again, from inside the method as before, at the first frame above them (the user's line, or torch's own line when
torch called the method), with that frame's module and ``__warningregistry__``: the user's filters decide as they
would without the doctor (an "error" filter raises there; "default" shows a warning once per line of the user's;
"once" once per text). The first pass is shown to no one: an "always" filter for this module's relay, put at the
front of ``warnings.filters`` in place while a relay runs, keeps it out of every registry (``warnings.filters``
changed through ``warnings.filterwarnings`` would make Python forget which warnings every module has shown).
Python 3.12's ``warnings.warn(skip_file_prefixes=...)`` does this for a warning's own caller; torch's warnings are
not ours to change.

Example:
    >>> import warnings
    >>> def method():
    ...     warnings.warn("deprecated", UserWarning, stacklevel=2)
    >>> @see_through
    ... def wrapped():
    ...     return relay(method)
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     wrapped()
    >>> seen[0].filename.startswith("<doctest")  # the line that called wrapped(), not relay's
    True
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable

_SEEN_THROUGH: set = set()  # code objects of the wrappers a warning is pointed past
_FIRST_PASS = ("always", None, Warning, re.compile(re.escape(__name__) + r"\Z"), 0)
_under: list[Callable] = []  # the showwarning that was in place when the outermost relay began


def see_through(wrapper: Callable) -> Callable:
    """Marks ``wrapper`` (a function between the user's call and :func:`relay`): a warning pointed at its frame is
    pointed at its caller instead. Returns it unchanged."""
    _SEEN_THROUGH.add(wrapper.__code__)
    return wrapper


def relay(original: Callable, /, *args, **kwargs):
    """``original(*args, **kwargs)``, with the warnings it points at this call (or at a :func:`see_through` frame
    above it) given at the first frame above them (see the module's docstring)."""
    if warnings.showwarning is _show:  # a relay inside a relay: the outer one has it in place
        return original(*args, **kwargs)
    _under.append(warnings.showwarning)
    warnings.filters.insert(0, _FIRST_PASS)
    warnings.showwarning = _show
    try:
        return original(*args, **kwargs)
    finally:
        for i, entry in enumerate(warnings.filters):
            if entry is _FIRST_PASS:
                del warnings.filters[i]
                break
        if warnings.showwarning is _show:
            warnings.showwarning = _under[-1]
        _under.pop()


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while a relay runs: a warning pointed at a relay or a wrapper is warned again at the
    frame above them; any other is shown as before."""
    caller = _caller(filename, lineno)
    if caller is None:
        _under[-1](message, category, filename, lineno, file, line)
        return
    scope = caller.f_globals
    warnings.warn_explicit(message, category, caller.f_code.co_filename, caller.f_lineno,
                           module=scope.get("__name__", "<string>"),
                           registry=scope.setdefault("__warningregistry__", {}), module_globals=scope)


def _caller(filename: str, lineno: int):
    """The frame above the innermost relay and the wrappers around it, if the warning at ``filename:lineno``
    points at one of them; else None."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code is not _RELAY:
        frame = frame.f_back
    pointed = False
    while frame is not None and (frame.f_code is _RELAY or frame.f_code in _SEEN_THROUGH):
        pointed = pointed or (frame.f_code.co_filename == filename and frame.f_lineno == lineno)
        frame = frame.f_back
    return frame if pointed else None


_RELAY = relay.__code__

__all__ = ["relay", "see_through"]
