"""Saturated units that the fit put at their bounds. A tanh (or sigmoid) layer saturated from the start stops
learning: its units pass almost no gradient (1 - a^2 < 0.02 at |a| > 0.99), the failure Glorot & Bengio (2010)
showed from a poor init or inputs of a large scale. A layer whose values the training itself drove to the bounds,
while the loss fell far, holds values that fit: a hypernetwork's generated weights that the task wants at +-1
(Ha et al. 2017), a gate learned open or shut. Its warning is kept as information, with the numbers.

Example:
    >>> records = [{"step": 50, "loss": 1.0, "activations": {"gen.3": {"saturated": 0.35}}},
    ...            {"step": 450, "loss": 1e-4, "activations": {"gen.3": {"saturated": 0.5}}}]
    >>> fitted_bounds({"kind": "saturated units", "where": "gen.3", "step": 450}, records, 0.5) is not None
    True
"""

from __future__ import annotations

import math

#: the fall of the loss, from the first snapshot to the last, that reads as a fit reaching the bounds on purpose
FALL = 10.0


def fitted_bounds(warning: dict, records: list[dict], threshold: float) -> str | None:
    """What a "saturated units" ``warning`` shows when its layer was saturated by the fit: at the first snapshot at
    most the ``threshold`` of its values saturated (the warning came later), and the loss at the last snapshot
    :data:`FALL` times lower than at the first (both finite, the first above 0); None otherwise (saturated from the
    start, or a loss that did not fall: a rate too high drives units to their bounds too)."""
    if warning["kind"] != "saturated units":
        return None
    read = [r for r in records if math.isfinite(r["activations"].get(warning["where"], {}).get("saturated", math.nan))
            and r.get("loss") is not None and math.isfinite(r["loss"])]
    if len(read) < 2:
        return None
    first, last = read[0], read[-1]
    start = first["activations"][warning["where"]]["saturated"]
    if start > threshold or not first["loss"] > 0 or not 0 <= last["loss"] * FALL <= first["loss"]:
        return None
    end = last["activations"][warning["where"]]["saturated"]
    return (f"saturated as the fit went on: {start:.0%} at step {first['step']}, {end:.0%} at step {last['step']}, "
            f"while the loss fell {first['loss']:.3g} -> {last['loss']:.3g} (the training drove these values to the "
            "bounds, not an init or an input scale)")
