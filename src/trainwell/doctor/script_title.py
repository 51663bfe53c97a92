"""The title of a report of ``trainwell watch``: the script, the loop's model, and the step its readings begin at.

The command learns which model and optimizer the loop trains from its first step (the optimizer that steps, the
module that holds its parameters), so the watch's hooks go on after that step: the readings of the network begin at
the next one, while the losses of the steps before it, kept as they went, still start the loss curve.
"""

from __future__ import annotations


def read_from(unread: int, curve_from: int, models: int, optimizers: int, passes: bool = False) -> str:
    """The title's note of where the readings begin: the steps before the watch began were the ones that showed
    which model and optimizer the loop trains (its hooks go on then); their losses start the loss curve when kept.
    ``passes``: the loop never called ``optimizer.step()``, so what was counted are its ``backward()`` passes (the
    report reads each as a step).

    >>> read_from(1, 1, 1, 1)
    'step 1 showed which model and optimizer the loop trains: read from step 2; its loss curve from step 1'
    >>> read_from(2, 3, 2, 2)
    'steps 1-2 showed which models and optimizers the loop trains: read from step 3'
    >>> title = read_from(3, 1, 1, 1, passes=True)
    >>> title.startswith("backward() passes 1-3 showed which model and optimizer the loop trains; no optimizer.step()")
    True
    >>> title.endswith("ran, so each pass counts as a step: read from pass 4; its loss curve from pass 1")
    True
    """
    unit = "pass" if passes else "step"
    if unread < 1:
        return f"read from {unit} 1"
    steps = "step 1" if unread == 1 else f"steps 1-{unread}"
    if passes:
        steps = "backward() pass 1" if unread == 1 else f"backward() passes 1-{unread}"
    which = f"{'model' if models == 1 else 'models'} and {'optimizer' if optimizers == 1 else 'optimizers'}"
    counted = "; no optimizer.step() ran, so each pass counts as a step" if passes else ""
    curve = f"; its loss curve from {unit} {curve_from}" if curve_from <= unread else ""
    return f"{steps} showed which {which} the loop trains{counted}: read from {unit} {unread + 1}{curve}"


__all__ = ["read_from"]
