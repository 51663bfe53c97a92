"""Dropout that drops most of its inputs: torch's ``nn.Dropout(p)`` takes the probability to *drop* a unit, while
Srivastava et al. (2014) and the lecture write p for the probability to *keep* one (their default 0.5 for hidden
units, 0.8 for inputs). ``nn.Dropout(0.9)`` written to keep 90% keeps 10%: the network trains through a tenth of
its units, and the curve, the overfit check and the dead-unit monitors then read a model that cannot fit, not
why.

A drop probability of :data:`HIGH` or more on any dropout module is named (a warning; a fail with ``p = 1``, which
zeroes every input), with its module's name and the ``p`` that keeps what was likely meant. Dropout called as a
function (``F.dropout(x, 0.9)``) is not seen.
"""

from __future__ import annotations

from torch import nn

from trainwell.doctor.verdict import Verdict

HIGH = 0.8
"""The lowest drop probability called "most of its inputs": above every rate the dropout paper recommends (0.5 for
hidden units, 0.2 for inputs), and what ``p=0.9`` or ``p=0.8`` written as keeping probabilities give."""

_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def high_dropout(model: nn.Module) -> list[tuple[str, float]]:
    """``(name, p)`` of every dropout module of ``model`` that drops :data:`HIGH` or more of its inputs."""
    return [(name or type(m).__name__, float(m.p)) for name, m in model.named_modules()
            if isinstance(m, _DROPOUTS) and m.p >= HIGH]


def dropout_rate_verdict(model: nn.Module, check: str = "dropout rate") -> Verdict | None:
    """The verdict on ``model``'s dropout rates, or None when none drops :data:`HIGH` or more."""
    found = high_dropout(model)
    if not found:
        return None
    name, p = max(found, key=lambda f: f[1])
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    kind = "nn.Dropout" if name == "Dropout" else f"dropout '{name}'"
    if p >= 1.0:
        return Verdict(check, "fail", f"{kind} has p = 1: it zeroes every input in training{more}",
                       "p < 1, the probability to drop", "torch's p is the probability to drop a unit: p = 1 drops "
                       "them all, and nothing after it learns; use p = 0.1-0.5")
    return Verdict(check, "warn", f"{kind} has p = {p:g}: it drops {p:.0%} of its inputs in training{more}",
                   f"p below {HIGH:g} (0.1-0.5 is usual)", f"torch's p is the probability to drop a unit, not to "
                   f"keep it: to keep {p:.0%}, write nn.Dropout(p={1 - p:.2g}) (trainwell.nn.dropout.Dropout takes "
                   f"keep_prob={p:g})")
