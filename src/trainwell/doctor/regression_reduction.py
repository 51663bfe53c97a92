"""How a regression loss is scaled against the mean over its output elements, read from the loss's value and the
gradient it sends to the outputs on one optimizer step (the value given to ``w.step(loss)``; the step's k
micro-batches' outputs when gradients are accumulated).

Per element the derivative d_i of a quadratic loss fixes its value: squared error r^2 has d = 2r, so
l = d^2 / 4; Huber's quadratic zone (|r| <= delta) r^2 / 2 has d = r, so l = d^2 / 2 (Huber 1964). A loss c times
the mean over n elements (those the loss reached: a gradient of exactly 0 marks an output it never read) sends
g_i = c d_i / n, so with rho = L / ||g||^2 the factor is c = n / (4 rho) for squared error (exact, read to 1e-3).
Squared error / 2 (or Huber, SmoothL1 with beta = 1, inside its quadratic zone, which sends the same gradient) is
squared error with c halved. Huber with delta = 1 with elements in its linear zone: those send |d| = 1 exactly (the
largest |g|, shared by several elements), so c = n max |g|; the linear zone's l = |r| - 1/2 >= d^2 / 2, so
rho >= n / (2c) must hold too.

The factor c then names the loss's reduction, against what the step's k micro-batches and the outputs' m columns
allow (the first that fits):

- 'mean': c = 1 / k (each micro-batch's mean divided by k; k = 1: a plain mean), or 1 / k^2 (the loss given to
  ``w.step`` is the undivided one, while ``backward()`` ran on it divided by k);
- 'undivided': c = 1 with k > 1 (or m with per-column means): k micro-batches accumulated, each a full mean, so
  the step's gradient is k times the mean's;
- 'columns': c = m / k: the sum over the m output columns of per-column means, m times the mean over all elements;
- 'sum': c = n or n / k (``reduction='sum'``): n times the mean's;
- 'scaled': c k a whole number >= 2 otherwise: a loss counted twice, or multiplied by the wrong count.

The value given to ``w.step`` may be the last micro-batch's loss (read against its gradient alone) or the step's
total over its micro-batches (read against all of their gradients). Under AMP's GradScaler ``backward()`` ran on
the loss times the scale S, so the gradients are multiplied back by ``unscale`` = 1 / S first.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

TOL = 1e-3
#: the relative tolerance of the linear-zone reading (|g| = c / n exactly) in float32 and float64
LINEAR_TOL = 1e-6
#: a loss scaled by a whole number (counted twice) is read up to this multiple, to this tolerance at most
MOST_SCALED, SCALED_TOL = 16, 4e-3


class Reading(NamedTuple):
    """One observed step's reading: ``kind`` ('mean', 'undivided', 'columns', 'sum', 'scaled'), ``loss`` ('MSE',
    'half': squared error / 2 or Huber in its quadratic zone, 'Huber'), ``n`` the elements one micro-batch's loss
    reached, ``weight`` the step's gradient against that of the mean over the step's elements, ``k`` micro-batches,
    ``columns`` the outputs' columns, ``scale`` GradScaler's scale divided out (1 without)."""

    kind: str
    loss: str
    n: int
    weight: float
    k: int = 1
    columns: int = 1
    scale: float = 1.0


def reduction(pairs: list[tuple[torch.Tensor, torch.Tensor | None]], loss: float,
              unscale: float = 1.0) -> Reading | None:
    """The :class:`Reading` of one optimizer step from ``pairs``, the (outputs, gradient) of each of its k
    micro-batches in order (the outputs (B,) or (B, m), each backward pass's own), and ``loss``, the value given to
    ``w.step``; None when the loss is not one of the quadratic or Huber losses above over n >= 8 elements, or its
    factor fits no reduction."""
    if not pairs or any(g is None or z.shape != g.shape or z.dim() not in (1, 2) or not g.is_floating_point()
                        for z, g in pairs):
        return None
    z, g_last = pairs[-1]
    low = torch.finfo(g_last.dtype).eps if g_last.dtype in (torch.float16, torch.bfloat16) else 0.0
    tol, linear_tol = max(TOL, 4 * low), max(LINEAR_TOL, 4 * low)
    grads = [g.detach().double().reshape(-1) * unscale for _, g in pairs]
    grads = [g[g != 0] for g in grads]
    g = grads[-1]
    n, k = g.numel(), len(pairs)
    if n < 8 or not loss > 0 or not all(bool(torch.isfinite(t).all()) for t in grads):
        return None
    squares = [float((t * t).sum()) for t in grads]
    if not all(sq > 0 for sq in squares):
        return None
    rhos = [loss / squares[-1]] + ([loss / sum(squares)] if k > 1 else [])  # the last micro-batch's value, the total
    columns = z.shape[1] if z.dim() == 2 and z.shape[1] >= 2 and n == z.numel() else 1
    scale = 1 / unscale
    top = float(g.abs().max())
    linear = int((g.abs() >= top * (1 - LINEAR_TOL)).sum())  # the linear zone's |g| alike, also when rounded
    if linear == n:  # |d| alike on every element: an L1 loss, whose value its gradient does not fix
        return None
    quadratic = [n / (4 * rho) for rho in rhos]
    for c in quadratic:
        found = _fit(c, ("MSE", 1.0), ("half", 0.5), n=n, k=k, m=columns, tol=tol)
        if found is not None:
            return Reading(*found, k, columns, scale)
    if linear >= 2 and any(rho >= n / 2 / (n * top) * (1 - tol) for rho in rhos):  # a linear zone: Huber's
        found = _fit(n * top, ("Huber", 1.0), n=n, k=k, m=columns, tol=linear_tol)
        found = found or _whole_multiple(n * top, ("Huber", 1.0), k=k, n=n, tol=linear_tol)
        if found is not None:
            return Reading(*found, k, columns, scale)
    for c in quadratic:
        found = _whole_multiple(c, ("MSE", 1.0), ("half", 0.5), k=k, n=n, tol=tol)
        if found is not None:
            return Reading(*found, k, columns, scale)
    return None


def _fit(c: float, *losses: tuple[str, float], n: int, k: int, m: int, tol: float) -> tuple | None:
    """(kind, loss, n, the step's weight against the mean) of the first reduction whose factor fits ``c`` (the
    loss's factor on one micro-batch's mean, in units of squared error's for the quadratic losses), each loss's
    ``base`` multiplying the reductions' factors (squared error / 2 is squared error with c halved)."""
    candidates = [("mean", 1 / k)] + ([("mean", 1 / k**2), ("undivided", 1.0)] if k > 1 else [])
    if m > 1:
        candidates += [("columns", m / k)] + ([("undivided", float(m))] if k > 1 else [])
    candidates += [("sum", float(n))] + ([("sum", n / k)] if k > 1 else [])
    for kind, factor in candidates:
        for name, base in losses:
            if abs(c - factor * base) <= tol * factor * base:
                return kind, name, n, 1.0 if kind == "mean" else factor * k
    return None


def _whole_multiple(c: float, *losses: tuple[str, float], k: int, n: int, tol: float) -> tuple | None:
    """('scaled', loss, n, weight) when the step's weight against the mean is a whole number from 2 to
    :data:`MOST_SCALED`, held to the float32 tolerance at most: a ratio that only lands near one (a loss of
    another form) is not read so."""
    for name, base in losses:
        weight = c / base * k
        if 2 - TOL <= weight <= MOST_SCALED and abs(weight - round(weight)) <= min(tol, SCALED_TOL) * weight:
            return "scaled", name, n, float(round(weight))
    return None
