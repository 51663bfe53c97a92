"""Readers that see every call of one torch method while any of them is active (a watched loop's DataLoaders and
samplers, which the loop builds and iterates itself, and the state dicts it loads into a module): the method is
replaced on its class when the first reader starts and put back when the last one stops, so nested watches share
one replacement and nothing stays patched after them.

Example:
    >>> from torch.utils.data import RandomSampler
    >>> class Epochs(ReadsCalls):
    ...     patched = (RandomSampler, "__iter__")
    ...     def __init__(self):
    ...         self.count = 0
    ...     def saw(self, sampler):
    ...         self.count += 1
    >>> reader = Epochs()
    >>> reader.start()
    >>> _ = list(RandomSampler(range(3))), list(RandomSampler(range(3)))
    >>> reader.stop()
    >>> reader.count, RandomSampler.__iter__ is Epochs._original
    (2, True)
"""

from __future__ import annotations

from trainwell.doctor.caller_warnings import relay, see_through


class ReadsCalls:
    """Base of a reader of ``patched = (cls, method name)``: :meth:`saw` gets each call's object and arguments
    (before the original method runs) between :meth:`start` and :meth:`stop`; each subclass keeps its own active
    readers."""

    patched: tuple[type, str]
    _active: list[ReadsCalls] = []
    _original = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._active, cls._original = [], None

    def saw(self, obj, *args, **kwargs) -> None:
        """One call of the patched method on ``obj`` with ``args`` and ``kwargs``."""

    def start(self) -> None:
        kind = type(self)
        if not kind._active:
            owner, name = kind.patched
            original = kind._original = getattr(owner, name)

            @see_through
            def read(obj, *args, **kwargs):
                for reader in kind._active:
                    reader.saw(obj, *args, **kwargs)
                return relay(original, obj, *args, **kwargs)

            setattr(owner, name, read)
        kind._active.append(self)

    def stop(self) -> None:
        kind = type(self)
        if self in kind._active:
            kind._active.remove(self)
            if not kind._active:
                setattr(*kind.patched, kind._original)
