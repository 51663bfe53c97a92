"""The validation loss a script computed itself, read under ``trainwell watch`` from its own local variables.

``trainwell watch`` hands ``w.validate()`` the mean of the validation's loss calls, right whatever the script did
with them: a script that averages them with the wrong denominator (batch means summed and divided by
``len(val_dataset)``, ``reduction="sum"`` totals divided by the sequences or by every padded position, a training
batch's loss added to the total) keeps its wrong number to itself. At the validation's first loss call the frames
of the script's own code on the stack are held (:func:`script_frames`: the function running the validation and
those that called it, not Python's library, installed packages, torch or trainwell); when the validation is handed
over (at the next step, or at the script's end) their local variables are read (:func:`numbers`: Python's and
NumPy's floats, one-element floating tensors, the last item of a list, a dict's values, a method's ``self``'s
attributes): a function that returned (``val_loss = evaluate(...)``) left its locals in its frame, and the loop's
frame holds the number it was given.
Each is held against the averages of :mod:`~trainwell.doctor.average_forms` (:func:`stated`): when one of them is a
right average of the validation's batches, or none is an average at all, the watch's own mean is handed as before;
when those that are averages all give one wrong form (the same one, at the same value), that value is the script's
number, handed in place of the watch's mean, and ``loop: validation loss average`` reads it as it reads the value
given to the explicit ``w.validate()``. A float in the script's locals equal, within
:data:`~trainwell.doctor.average_forms.CLOSE`, to a wrong average of this validation's losses and to no right one is
the script's own arithmetic on those losses; nothing is read at the training steps.
"""

from __future__ import annotations

import functools
import gc
import numbers as _numbers
import os
import sys
import sysconfig
import types

import torch

from trainwell.doctor.average_forms import matched, mixed

FRAMES = 32  # frames walked up from a loss call
VALUES = 512  # local values read per frame (a script's globals at its top level), at most
TENSORS = 64  # one-element tensors read per validation, at most (one host sync)
ITEMS = 64  # a dict's values read, at most


def _library() -> tuple[str, ...]:
    """The folders whose code is not the script's: Python's library, installed packages, torch, trainwell."""
    paths = sysconfig.get_paths()
    folders = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    import trainwell

    folders |= {os.path.dirname(torch.__file__), os.path.dirname(trainwell.__file__)}
    return tuple(os.path.join(os.path.realpath(f), "") for f in folders if f)


_LIBRARY: tuple[str, ...] | None = None


@functools.lru_cache(maxsize=1024)
def own_code(filename: str) -> bool:
    """Whether ``filename`` (a code object's) is the script's own code: a file, not under :func:`_library`."""
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _library()
    if not filename or filename.startswith("<"):
        return False
    return not os.path.realpath(filename).startswith(_LIBRARY) and "site-packages" not in filename


#: the file of the frame that runs the script (``trainwell watch``'s exec): the frames above it are its caller's
RUNNER = os.path.join(os.path.dirname(__file__), "script_exec.py")  # imported from the same folder as this


def script_frames(frame: types.FrameType | None) -> list[types.FrameType]:
    """The frames of the script's own code among ``frame`` and the :data:`FRAMES` - 1 above it (held: a frame that
    returns keeps its locals), up to the frame running the script: its caller's (a test calling the script watch)
    are not read (reading a function frame's locals leaves a snapshot of them on it, before Python 3.13, which
    would keep that caller's objects alive)."""
    found = []
    for _ in range(FRAMES):
        if frame is None or frame.f_code.co_filename == RUNNER:
            break
        if own_code(frame.f_code.co_filename):
            found.append(frame)
        frame = frame.f_back
    return found


def _number(value, tensors: list) -> float | None:
    """``value`` as a float when it is a real number that is not an integer (a one-element floating tensor is
    gathered in ``tensors`` instead); else None."""
    if isinstance(value, float):
        return value
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        if value.numel() == 1 and value.is_floating_point() and not value.is_meta and len(tensors) < TENSORS:
            tensors.append(value)
        return None
    if isinstance(value, _numbers.Real) and not isinstance(value, _numbers.Integral):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def numbers(frames: list[types.FrameType]) -> list[float]:
    """The real numbers the frames' local variables hold: floats, one-element floating tensors, the last item of a
    list or tuple and the values of a dict (a history of validation losses, a dict of metrics)."""
    found, tensors = [], []

    def read(value) -> None:
        number = _number(value, tensors)
        if number is not None:
            found.append(number)

    for frame in frames:
        held = frame.f_locals
        for value in [*list(held.values())[:VALUES], *_attributes(held.get("self"))]:
            read(value)
            if isinstance(value, (list, tuple)) and value:
                read(value[-1])
            elif isinstance(value, dict) and len(value) <= ITEMS:
                for inner in list(value.values()):
                    read(inner)
                    if isinstance(inner, list) and inner:
                        read(inner[-1])
    if tensors:
        try:
            found += torch.stack([t.detach().double().reshape(()) for t in tensors]).cpu().tolist() \
                if len({t.device for t in tensors}) == 1 else [float(t) for t in tensors]
        except RuntimeError:  # a tensor that cannot be read (freed, another kind): its number is left out
            pass
    return [n for n in found if n == n and abs(n) != float("inf")]


def _attributes(value) -> list:
    """The attribute values of a method's ``self`` (a user's trainer keeping ``self.val_loss``), read through
    ``gc.get_referents`` (not ``__dict__``, which would give the instance a dict of its own)."""
    if value is None or isinstance(value, (types.ModuleType, type)) or not type(value).__dictoffset__:
        return []
    inner = gc.get_referents(value)[:VALUES]  # its attributes' dict, or their values (kept inline)
    return [v for d in inner if isinstance(d, dict) for v in list(d.values())[:VALUES]] + inner


def stated(values: list[float], calls: list[tuple], extra: list[tuple], train: float | None = None,
           per_target: bool = False) -> float | None:
    """The script's own validation loss among ``values``: the one wrong average of the validation's batches
    (``calls``; ``extra``: the batches of a training batch recomputed before it) they hold, when none of them is a
    right one; None otherwise (``train``, ``per_target``: as :func:`~trainwell.doctor.average_forms.matched`)."""
    found: dict[tuple, float] = {}
    for value in values:
        form = matched(value, calls, train, per_target)
        if form[0] is None and extra and mixed(value, calls, extra):
            form = ("mixed", None)
        if form[0] == "right":
            return None
        if form[0] is not None:
            found.setdefault(form, value)
    if len(found) != 1:
        return None
    (value,) = found.values()
    return value


class ScriptFrames:
    """The frames of the script's own code at the first loss call of a validation, held till it is handed over."""

    def __init__(self):
        self.frames: list[types.FrameType] = []

    def called(self, first: bool) -> None:
        """A validation loss call kept (``first``: the first since the last step): the frames are held."""
        if first or not self.frames:
            self.frames = script_frames(sys._getframe(1))

    def value(self, calls: list[tuple], extra: list[tuple], train: float | None = None,
              per_target: bool = False) -> float | None:
        """The script's own validation loss (:func:`stated`) among its frames' numbers; the frames are let go."""
        frames, self.frames = self.frames, []
        if not frames or len(calls) < (1 if per_target else 2):  # one call: as matched() reads it
            return None
        try:
            return stated(numbers(frames), calls, extra, train, per_target)
        except Exception:  # a local that cannot be read as it claims (a user's list whose items raise): not read
            return None

    def clear(self) -> None:
        """A step without a validation: the frames are let go."""
        self.frames = []


__all__ = ["ScriptFrames", "numbers", "own_code", "script_frames", "stated"]
