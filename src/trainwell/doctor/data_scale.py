"""Pre-flight: when the initial loss is off because the inputs or the targets are far from unit scale, the checks
that train a copy (overfit, the input-independent baseline) or read its units (dead units, variance propagation)
fail for that same reason: their advice names it first instead of capacity or init."""

from __future__ import annotations

import torch

from trainwell.doctor.forward import input_scale
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.targets import far_from_unit
from trainwell.doctor.verdict import Verdict

#: the checks whose failure a far-off data scale explains
SCALE_FOLLOWERS = ("overfit a tiny subset", "input-independent baseline", "dead units", "variance propagation")


def defer_to_data_scale(verdicts: list[Verdict], x: torch.Tensor | Inputs, y) -> list[Verdict]:
    """``verdicts`` with the advice of each failed or warned :data:`SCALE_FOLLOWERS` check starting with the data
    scale that the initial loss's advice names (inputs first, then targets); unchanged when it names neither or
    the advice already says it."""
    initial = next((v for v in verdicts if v.check == "initial loss" and v.status in ("fail", "warn")), None)
    if initial is None:
        return verdicts
    causes = [c for c in (input_scale(x), far_from_unit(y)) if c is not None and c in (initial.advice or "")]
    if not causes:
        return verdicts
    cause = causes[0]
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix 'initial loss' first: {cause}; else {v.advice}")
            if v.check in SCALE_FOLLOWERS and v.status in ("fail", "warn") and cause.split(":")[0] not in
            (v.advice or "") and "first:" not in (v.advice or "") else v for v in verdicts]
