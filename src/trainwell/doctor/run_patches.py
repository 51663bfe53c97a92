"""torch's methods replaced for one run of ``trainwell watch``, through forwarders that outlive it harmlessly."""

from __future__ import annotations

from collections.abc import Callable

from trainwell.doctor.caller_warnings import see_through


def forwarding_patch(owner, name: str, wrap: Callable) -> Callable[[], None]:
    """``owner.name`` replaced by ``wrap(original)`` for the run, through a forwarder that calls the original
    once the run is over: a library imported during the run that keeps the method it found (torch._dynamo's
    tables of Tensor methods and torch functions, built at its first import, which an optimizer's first step
    makes) holds the forwarder, which no longer reaches the watch (its script's globals, optimizers, model).
    Returns the undo: the original put back, and the forwarder pointed at it."""
    original = getattr(owner, name)
    target = [wrap(original)]

    @see_through
    def forward(*args, **kwargs):
        return target[0](*args, **kwargs)

    def undo() -> None:
        setattr(owner, name, original)
        target[0] = original
    setattr(owner, name, forward)
    return undo
