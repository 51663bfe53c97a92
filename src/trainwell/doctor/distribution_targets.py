"""A loss against probability targets (distillation, soft labels), read from the gradient it sends to the outputs
against the targets given to ``w.step(loss, y=target)``: (B, C) rows of probabilities.

``F.kl_div(input, target)`` reads its input as log-probabilities: its gradient on the input is ``-a target`` (a the
weight: 1/B for ``reduction='batchmean'``, 1/(B C) for 'mean'). So:

- on logits z through ``log_softmax`` (the distillation loss of Hinton, Vinyals & Dean 2015), or cross-entropy to
  the targets: ``a (softmax(z) - target)``, the gradient of KL(target || softmax(z)), least at softmax(z) = target;
- on outputs that are already log-probabilities (a LogSoftmax last layer): ``-a target``;
- on ``softmax(z)`` (probabilities where log-probabilities belong): the gradient of ``-a sum(target * softmax(z))``,
  ``-a s * (target - <target, s>)`` with s = softmax(z): the loss goes below 0, and its least value puts all the
  probability on each row's largest target, not on the target distribution;
- with a distillation temperature T, the two forms above on softmax(z / T) (Hinton et al.'s loss is scaled by
  T^2, which changes a only);
- on the outputs themselves when they are not log-probabilities (raw scores, or a Softmax's probabilities):
  ``-a target`` too: the loss -sum(target * z) falls without bound on raw scores.

Each is a least-squares fit of the one weight a (and T) to the whole gradient, to a relative residual of 1e-3 (4 x
the machine epsilon in low precision). Hard labels (one-hot rows) are left to :mod:`~trainwell.doctor.loss_form`.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.step_readings import log_probabilities
from trainwell.doctor.verdict import Verdict

TOLERANCE = 1e-3


def probability_rows(y: torch.Tensor, z: torch.Tensor) -> bool:
    """Whether ``y`` holds (B, C) rows of probabilities (C >= 2, each row >= 0 and summing to 1) shaped like the
    outputs ``z``."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() != 2 or y.shape[1] < 2 or \
            tuple(y.shape) != tuple(z.shape):
        return False
    y = y.detach().double()
    return bool((y >= 0).all()) and bool(((y.sum(1) - 1).abs() < 1e-3).all())


def read_against(z: torch.Tensor, g: torch.Tensor | None, y: torch.Tensor) -> dict | None:
    """The loss's form against probability targets ``y`` from the outputs ``z`` and their gradient ``g``:
    ``{"form", "weight", "rows", "classes", "temperature", "probabilities"}`` with form 'soft_cross_entropy' (KL
    divergence or cross-entropy to the targets on logits), 'log_probabilities' (``kl_div`` on outputs that are
    log-probabilities), 'kl_on_softmax' (``kl_div`` given softmax(z / T)) or 'kl_on_outputs' (``kl_div`` given
    outputs that are not log-probabilities); weight the sum of the per-row weights (1 for a mean over the rows),
    temperature T (the softmax forms are fitted at T = 1, else at the T in [0.1, 30] that fits best), probabilities
    whether the outputs are rows of probabilities (a Softmax ends the model). None when ``y`` is not rows of
    probabilities shaped like ``z``, every row is one-hot (hard labels, which :mod:`~trainwell.doctor.loss_form`
    reads from the gradient alone), or no form fits."""
    if g is None or z.dim() != 2 or g.shape != z.shape or not g.is_floating_point() or not probability_rows(y, z):
        return None
    low = torch.finfo(g.dtype).eps if g.dtype in (torch.float16, torch.bfloat16) else 0.0
    tol = max(TOLERANCE, 4 * low)
    zd, gd, t = z.detach().double(), g.detach().double(), y.detach().double().to(g.device)
    if bool(((t == 0) | (t == 1)).all()) or not bool(torch.isfinite(gd).all()) or float(gd.abs().sum()) == 0.0:
        return None
    shapes = {"soft_cross_entropy": lambda s: s - t,
              "kl_on_softmax": lambda s: -s * (t - (t * s).sum(1, keepdim=True))}
    found = None
    for form, shape in shapes.items():  # at T = 1
        a = _weight(gd, shape(torch.softmax(zd, 1)), tol)
        if a is not None:
            found = form, a, 1.0
            break
    if found is None:
        a = _weight(gd, -t, tol)
        if a is not None:
            found = "log_probabilities" if log_probabilities(z) else "kl_on_outputs", a, 1.0
    for form, shape in shapes.items() if found is None else ():
        fit = _at_temperature(zd, gd, shape, tol)
        if fit is not None:
            found = form, *fit
            break
    if found is None:
        return None
    form, a, temperature = found
    probabilities = bool((zd >= 0).all()) and bool(((zd.sum(1) - 1).abs() < max(1e-4, tol)).all())
    return {"form": form, "weight": a * len(z), "rows": len(z), "classes": z.shape[1], "temperature": temperature,
            "probabilities": probabilities}


def _at_temperature(z: torch.Tensor, g: torch.Tensor, shape, tol: float) -> tuple[float, float] | None:
    """(weight, T) of g = weight shape(softmax(z / T)) for the T in [0.1, 30] that fits best (a grid in log T,
    then a golden-section search between the best point's neighbours), when the fit is below ``tol``. Both forms
    sum to 0 over each row: a gradient that does not is not searched."""
    if float(g.sum(1).abs().max()) > tol * float(g.abs().max()):
        return None

    def resid(log_t: float) -> float:
        v = shape(torch.softmax(z / math.exp(log_t), 1))
        a = float((g * v).sum()) / max(float((v * v).sum()), 1e-300)
        return float((g - a * v).norm() / g.norm()) if a > 0 else math.inf

    lo, hi, points = math.log(0.1), math.log(30.0), 24
    grid = [lo + i * (hi - lo) / (points - 1) for i in range(points)]
    best = min(range(points), key=lambda i: resid(grid[i]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, points - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    m1, m2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    r1, r2 = resid(m1), resid(m2)
    for _ in range(30):  # one new point a round
        if r1 < r2:
            hi, m2, r2 = m2, m1, r1
            m1 = hi - ratio * (hi - lo)
            r1 = resid(m1)
        else:
            lo, m1, r1 = m1, m2, r2
            m2 = lo + ratio * (hi - lo)
            r2 = resid(m2)
    log_t = m1 if r1 < r2 else m2
    if min(r1, r2) >= tol:
        return None
    v = shape(torch.softmax(z / math.exp(log_t), 1))
    return float((g * v).sum()) / float((v * v).sum()), math.exp(log_t)


def _weight(g: torch.Tensor, shape: torch.Tensor, tol: float) -> float | None:
    """The one positive weight a with g = a shape to a relative residual below ``tol``, or None."""
    norm = float((shape * shape).sum())
    if norm == 0.0:
        return None
    a = float((g * shape).sum()) / norm
    resid = float((g - a * shape).norm() / g.norm())
    return a if a > 0 and resid < tol else None


def against_distributions(reads: list[dict | None], first_loss: float | None) -> Verdict | None:
    """The ``loop: loss`` verdict from the observed steps' :func:`read_against` readings (None where nothing fit),
    read alike on two thirds of them (two at least): ``F.kl_div`` given probabilities or outputs that are not
    log-probabilities fails; a KL divergence (or cross-entropy) on log-probabilities passes as a mean over the rows,
    and is named when divided by the classes too or summed; at a distillation temperature it passes."""
    found = [r for r in reads if r is not None]
    if len(found) < 2 or 3 * len(found) < 2 * len(reads) or len({r["form"] for r in found}) != 1:
        return None
    r = found[-1]
    form, c, rows = r["form"], r["classes"], r["rows"]
    steps = f"on {len(found)} of {len(reads)} observed steps"
    first = f"; first loss {first_loss:.4g}, below 0 where a KL divergence cannot go" \
        if first_loss is not None and first_loss < 0 else ""
    temperatures = sorted(t["temperature"] for t in found)
    temperature = temperatures[len(temperatures) // 2]
    hot = abs(temperature - 1) > 0.01
    z = f"z / {temperature:.2g}" if hot else "z"
    fix = "F.kl_div(F.log_softmax(z / T, dim=-1), F.softmax(teacher / T, dim=-1), reduction='batchmean') * T**2" \
        if hot else "F.kl_div(F.log_softmax(z, dim=-1), target, reduction='batchmean')"
    read = "read back from it and the loss's value" if r.get("targets_read") else "given"
    if form == "kl_on_softmax":
        return Verdict("loop: loss", "fail", f"F.kl_div is given probabilities (softmax({z}) of the outputs), not "
                       f"log-probabilities: the gradient is that of -sum(target * softmax({z})) against the targets "
                       f"{read} {steps}{first}",
                       "kl_div's input: log-probabilities", f"kl_div's input must be log-probabilities: use "
                       f"log_softmax, {fix}; given probabilities the loss goes below 0 and is least when each row "
                       "puts all its probability on its largest target, not when the model matches the targets")
    if form == "kl_on_outputs":
        given = "the outputs, which are probabilities (a Softmax ends the model)" if r["probabilities"] else \
            "the raw outputs"
        return Verdict("loop: loss", "fail", f"F.kl_div (or -sum(target * out)) is given {given}, not "
                       f"log-probabilities: the gradient is -target (the targets given) {steps}{first}",
                       "kl_div's input: log-probabilities", f"kl_div's input must be log-probabilities: use "
                       f"log_softmax on the scores, {fix}; otherwise the loss is -sum(target * out), which falls "
                       "without bound on raw scores and, on probabilities, is least when each row puts all its "
                       "probability on its largest target")
    loss = "KL divergence (or cross-entropy) to the probability targets" + \
        (", on log-probability outputs" if form == "log_probabilities" else "")
    if hot:
        return Verdict("loop: loss", "pass", f"{loss}, on softmax({z}) (a distillation temperature) {steps}", "-")
    weight = sorted(t["weight"] for t in found)[len(found) // 2]
    if abs(weight * c - 1) <= 0.02:
        return Verdict("loop: loss", "info", f"{loss}, averaged over the {rows} rows and the {c} classes "
                       f"(kl_div's reduction='mean') {steps}", "a mean over the rows", f"the gradient is 1/{c} of "
                       "the KL divergence's: use reduction='batchmean' (the mathematical definition), or multiply "
                       f"a learning rate tuned for it by {c}")
    if abs(weight - rows) <= 0.02 * rows:
        return Verdict("loop: loss", "info", f"summed {loss} over {rows} rows (reduction='sum') {steps}", "-",
                       f"the gradient is {rows}x the mean's and grows with the batch size: use "
                       f"reduction='batchmean', or divide a learning rate tuned for the mean by {rows}")
    return Verdict("loop: loss", "pass", f"{loss} (weights sum to {weight:.3g}) {steps}", "-")
