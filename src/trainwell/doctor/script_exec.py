"""For ``trainwell watch``: the user's script run as ``__main__``, and how it ended.

The script is compiled from its file and executed in a fresh module named ``__main__`` (registered in
``sys.modules`` while it runs, so that pickling its classes, as ``DataLoader`` workers do, finds them). Its
``sys.exit``, a Ctrl-C and its own exception end the run without being raised: they become the status the command
exits with and the error it shows, as Python itself would give them: the traceback starts at the script's own frame,
and the script is compiled as ``python script.py`` compiles it (from its bytes, so that a coding declaration counts,
and without this module's ``from __future__`` flags: its annotations stay evaluated), its ``__file__`` the absolute
path, as Python gives it.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from collections.abc import Callable

STOPPED = "KeyboardInterrupt: the script was stopped (Ctrl-C); what follows reads its loop up to there"


class ModelNameError(BaseException):
    """``--model NAME`` names no ``nn.Module`` of the script: the script is stopped (not an ``Exception``, which
    the script's own ``except Exception`` would catch)."""


def run_as_main(path: str, on_globals: Callable[[dict], None]) -> tuple[str | None, int, bool, str | None]:
    """Run the script at ``path`` as ``__main__`` (``on_globals`` is given its globals before it starts). Returns
    ``(error, status, exited, model_error)``: the error shown (None when it ran to its end or exited with 0), its
    exit status as Python would give it (1 when it raised), whether it ended by raising or calling ``sys.exit``, and
    the message of a :class:`ModelNameError` that stopped it."""
    try:
        _exec(path, on_globals)
    except ModelNameError as wrong:
        return str(wrong), 2, False, str(wrong)
    except SystemExit as stop:
        if stop.code not in (None, 0):  # sys.exit("message") gives 1
            return f"the script exited with status {stop.code}", stop.code if isinstance(stop.code, int) else 1, \
                True, None
        return None, 0, True, None
    except KeyboardInterrupt:
        return STOPPED, 130, True, None
    except Exception as error:  # the script's own error: shown, and the loop so far reported
        return script_traceback(error), 1, True, None
    return None, 0, False, None


def script_traceback(error: BaseException) -> str:
    """``error``'s traceback as ``python script.py`` prints it: this module's frames, which run the script, left out
    (a syntax error of the script has none of its own: Python prints only where it is)."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


def _exec(path: str, on_globals: Callable[[dict], None]) -> None:
    path = os.path.abspath(path)  # as Python gives __main__ its __file__ and its frames their file (3.9+)
    module = types.ModuleType("__main__")
    module.__file__ = path
    on_globals(module.__dict__)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module  # pickling the script's classes (DataLoader workers) finds them
    try:
        with open(path, "rb") as source:
            code = compile(source.read(), path, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


__all__ = ["ModelNameError", "run_as_main", "script_traceback"]
