"""A learning-rate scheduler created on the optimizer and never stepped: ``scheduler = StepLR(opt, 30)`` before the
loop and no ``scheduler.step()`` in it. torch raises nothing; the rate stays where the scheduler put it at its
creation - the base rate (StepLR, cosine), a warm-up's first small value (LinearLR, LambdaLR), or a one-cycle's
``max_lr / 25`` (OneCycleLR) - for the whole run.

Read when the report is written, only where it can be: the loop ran two epochs or more (two ``w.validate`` calls,
or two passes over a DataLoader's dataset), the rate applied never changed, and the optimizer's param groups carry
``initial_lr`` (every ``LRScheduler`` but ``ReduceLROnPlateau`` writes it there when created). Then the schedulers
that hold the optimizer are found among its referrers (``gc.get_referrers``: schedulers keep no registry, and
optimizers no reference to theirs; a scan of the heap, paid only then), and one whose step count (``last_epoch``,
set to 0 at creation and advanced by every ``step()``) is still 0 is named. The parts of a ``SequentialLR`` or
``ChainedScheduler`` are stepped by it (a later part waits for its milestone) and are not read on their own. A
``ReduceLROnPlateau`` leaves no mark on the optimizer (no ``initial_lr``): it is found where the code holds it
when it asks for the report (:func:`plateaus_held`: a local or global of the frames above the ``report()`` call,
or an attribute of one, ``self.scheduler``; no heap scan). One held then that was never stepped while the watch
ran (the watch reads every ``ReduceLROnPlateau.step`` call:
:class:`~trainwell.doctor.plateau_metric.PlateauMetrics`) while the loop ran two epochs or more at one rate is
named (:func:`unstepped_plateaus`):
``scheduler.step(val_loss)`` forgotten. One stepped on its metric every epoch passes, also when it never lowers the
rate (the metric kept improving). The frames are read once, at the report: their locals then are the objects the
code holds anyway.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    >>> [type(s).__name__ for s in never_stepped([opt])]
    ['StepLR']
    >>> sched.step()
    >>> never_stepped([opt])
    []
"""

from __future__ import annotations

import gc
import types

from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from trainwell.doctor.verdict import Verdict

NAME = "loop: learning rate applied"
#: the epochs the loop must run before a scheduler that never stepped is named
LEAST_EPOCHS = 2
#: the frames, from the one that asks for the report up, whose locals are read for a ReduceLROnPlateau
FRAMES = 4


def never_stepped(optimizers: list) -> list[LRScheduler]:
    """The live schedulers that hold one of ``optimizers`` and never stepped, without the parts of a SequentialLR
    or ChainedScheduler among them."""
    found = {}
    for opt in optimizers:
        for ref in gc.get_referrers(opt):
            if isinstance(ref, LRScheduler) and getattr(ref, "optimizer", None) is opt:
                found[id(ref)] = ref
    parts = {id(p) for s in found.values() for p in getattr(s, "_schedulers", ())}
    return [s for key, s in found.items() if key not in parts and s.last_epoch == 0]


def unstepped_verdict(optimizers: list, epochs: int, lrs: list[float]) -> Verdict | None:
    """A warn naming the schedulers on ``optimizers`` that never stepped while the loop ran ``epochs`` (two at
    least) epochs at the one rate ``lrs`` (the rate applied at each optimizer step); None otherwise."""
    if epochs < LEAST_EPOCHS or len(lrs) < 2 or max(lrs) != min(lrs) or \
            not any("initial_lr" in g for o in optimizers for g in o.param_groups):
        return None
    idle = never_stepped(list({id(o): o for o in optimizers}.values()))
    if not idle:
        return None
    kinds = sorted({type(s).__name__ for s in idle})
    return Verdict(NAME, "warn", f"{' and '.join(kinds)} created on the optimizer, but scheduler.step() never ran "
                   f"({len(lrs)} optimizer steps over {epochs} epochs): the rate stayed at {lrs[0]:.3g}",
                   "the scheduler stepped as its schedule is sized",
                   "call scheduler.step() after optimizer.step(): once per epoch for a schedule sized in epochs "
                   "(StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR(T_max=epochs)), once per batch for one "
                   "sized in steps (OneCycleLR, CyclicLR, a warm-up)")


def plateaus_held(frame: types.FrameType | None, optimizers: list) -> list[ReduceLROnPlateau]:
    """The ``ReduceLROnPlateau`` schedulers on one of ``optimizers`` that ``frame`` (the code asking for the watch's
    report) or the :data:`FRAMES` - 1 frames above it hold now, as a local (a global, at a script's
    top level) or as an attribute of one (``self.scheduler``)."""
    mine = {id(o) for o in optimizers}
    found: dict[int, ReduceLROnPlateau] = {}

    def read(value) -> None:
        if isinstance(value, ReduceLROnPlateau) and id(getattr(value, "optimizer", None)) in mine:
            found.setdefault(id(value), value)

    for _ in range(FRAMES):
        if frame is None:
            break
        for value in list(frame.f_locals.values()):
            read(value)
            for inner in _attributes(value):
                read(inner)
        frame = frame.f_back
    return list(found.values())


def _attributes(value) -> list:
    """The attribute values of an instance of a class with a ``__dict__`` (a user's trainer object), read through
    ``gc.get_referents``: reading ``value.__dict__`` would make the instance's attributes a dict of their own, which
    :func:`never_stepped` would then find in place of a scheduler."""
    kind = type(value)
    if isinstance(value, types.ModuleType | type | types.FunctionType) or not kind.__dictoffset__:
        return []
    inner = gc.get_referents(value)
    return [v for d in inner if isinstance(d, dict) for v in d.values()] + inner


def idle_plateaus(held: list[ReduceLROnPlateau], stepped: set[int]) -> list[ReduceLROnPlateau]:
    """Of the schedulers the code holds when the report is asked for (``held``), those not stepped while watched
    (``stepped``: the ids of those that were)."""
    return [s for s in held if id(s) not in stepped]


def unstepped_plateaus(idle: list[ReduceLROnPlateau], epochs: int, lrs: list[float]) -> Verdict | None:
    """A warn naming the ``ReduceLROnPlateau`` schedulers of ``idle`` (never stepped while watched:
    :func:`idle_plateaus`) when the loop ran ``epochs`` (two at least) epochs at the one rate ``lrs``; None
    otherwise."""
    if not idle or epochs < LEAST_EPOCHS or len(lrs) < 2 or max(lrs) != min(lrs):
        return None
    mode = idle[0].mode
    return Verdict(NAME, "warn", f"ReduceLROnPlateau(mode='{mode}') created on the optimizer, but "
                   f"scheduler.step(metric) never ran ({len(lrs)} optimizer steps over {epochs} epochs): it never "
                   f"saw a value to watch, and the rate stayed at {lrs[0]:.3g} whatever the loss did",
                   "scheduler.step(val_loss) once per epoch",
                   "call scheduler.step(val_loss) once per epoch, after the validation: ReduceLROnPlateau lowers "
                   "the rate only from the values it is given, after `patience` epochs without improvement")
