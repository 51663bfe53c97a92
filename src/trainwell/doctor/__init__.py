"""The lecture's "what if things are not working?" checklist, automated: pre-flight checks, in-flight monitors
and post-flight diagnosis. Every check returns a :class:`Verdict`; nothing here prints.

On your own model, data and loop:

- :func:`check` runs every pre-flight check and returns a :class:`Report` (no side effects on your objects);
- :func:`watch` wraps your training loop (``w.step(loss)`` per step) and ``w.report()`` gives the monitors'
  verdicts and the post-flight diagnosis.
"""

import importlib
import sys
import types

from trainwell.doctor.check import check, untouched
from trainwell.doctor.report import Report
from trainwell.doctor.verdict import Verdict, worst

__all__ = ["Report", "Verdict", "Watch", "check", "untouched", "watch", "worst"]


class _Doctor(types.ModuleType):
    """This package, whose ``watch`` is the function: also once its submodule of that name is imported (Python then
    sets the package's attribute to the submodule), as when ``__init__`` imported the function by name."""

    def __setattr__(self, name: str, value) -> None:
        if name == "watch" and isinstance(value, types.ModuleType):
            super().__setattr__("Watch", value.Watch)
            value = value.watch
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Doctor


def __getattr__(name: str):
    """``watch`` and ``Watch`` are imported on first use (PEP 562): their ~70 loop readers are not needed by a
    program that only checks a model, nor by ``trainwell fit``, which trains in its own loop."""
    if name in ("watch", "Watch"):
        importlib.import_module("trainwell.doctor.watch")  # sets both, through _Doctor.__setattr__
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
