"""Label smoothing applied twice: targets smoothed by hand (``0.9 * one_hot + 0.1 / C``) handed to
``nn.CrossEntropyLoss(label_smoothing=0.1)``, which smooths them again. The loss then trains towards
``(1 - e)^2 one_hot + ...``: an epsilon of ``1 - (1 - e)^2`` (0.19 for 0.1), read from the loss's gradient
(:func:`~trainwell.doctor.loss_form.read_form`). An epsilon that is itself a round value passes."""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: label smoothing"
#: the verdict's value starts with this: the smoothing changes the loss's floor, which the curve already reads
TWICE = "label smoothing"
ROUND = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # the epsilons people choose
TOLERANCE = 1e-3  # the epsilon is read to ~1e-6 from the gradient; 1 - 0.95^2 = 0.0975 lies 0.0025 from 0.1


def smoothed_twice(steps: list[dict]) -> Verdict | None:
    """A warn when the median label-smoothing epsilon read on the observed steps whose loss form was read (the
    first few) is ``1 - (1 - e)^2`` for a round ``e`` (and not itself a round value); None otherwise."""
    eps = sorted(s["smoothing"] for s in steps if s.get("smoothing"))
    if not eps or 2 * len(eps) < sum(s.get("form") is not None for s in steps):
        return None
    read = eps[len(eps) // 2]
    if any(abs(read - e) < TOLERANCE for e in ROUND):
        return None
    e = next((e for e in ROUND if abs(read - (1 - (1 - e) ** 2)) < TOLERANCE), None)
    if e is None:
        return None
    return Verdict(NAME, "warn", f"{TWICE} {read:.3g} = {e:g} applied twice, 1 - (1 - {e:g})^2 (smoothed "
                   f"targets and label_smoothing={e:g}?)", f"label smoothing {e:g}, applied once",
                   f"give the loss the class indices (or one-hot targets) with label_smoothing={e:g}, or the "
                   "targets smoothed by hand without label_smoothing: not both")
