"""Readers of every learning-rate scheduler created while they are active: ``LRScheduler.__init__`` and
``ReduceLROnPlateau.__init__`` (which does not call ``LRScheduler.__init__``), each creation handed to
:meth:`SchedulerInits.saw` with the scheduler and the optimizer it was given."""

from __future__ import annotations

from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from trainwell.doctor.method_readers import ReadsCalls


class SchedulerInits(ReadsCalls):
    """Base of a reader of scheduler creations: :meth:`saw` gets ``(scheduler, optimizer, ...)`` of an
    ``LRScheduler`` (its ``__init__``'s arguments) and ``(scheduler, optimizer)`` of a ``ReduceLROnPlateau``.
    Subclasses call ``super().__init__()``."""

    patched = (LRScheduler, "__init__")

    def __init__(self) -> None:
        self._plateaus = _PlateauInits(self)

    def start(self) -> None:
        super().start()
        self._plateaus.start()

    def stop(self) -> None:
        self._plateaus.stop()
        super().stop()


class _PlateauInits(ReadsCalls):
    """``ReduceLROnPlateau.__init__``, read for its owner."""

    patched = (ReduceLROnPlateau, "__init__")

    def __init__(self, owner: SchedulerInits) -> None:
        self._owner = owner

    def saw(self, scheduler: ReduceLROnPlateau, optimizer=None, *args, **kwargs) -> None:
        self._owner.saw(scheduler, kwargs.get("optimizer", optimizer))


__all__ = ["SchedulerInits"]
