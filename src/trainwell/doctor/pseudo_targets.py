"""Soft pseudo-labels that carry a gradient: a consistency loss whose targets are the same model's softmax on
another view, computed without ``torch.no_grad()`` or ``.detach()``.

Self-training and consistency regularization (UDA, Xie et al. 2020; MixMatch's sharpened guesses, Berthelot et al.
2019; VAT, Miyato et al. 2018) fit the predictions on a strongly perturbed view to the model's own (sharpened)
predictions on a weak view, held constant. A cross-entropy or KL divergence against soft targets t sends the
outputs z_s it scores the gradient c (softmax(z_s) - t); so an observed step whose one forward's gradient is
exactly that, with t = softmax(z_w / T) the softmax of another forward of the same model at a temperature T, has
its targets read back. When the target forward z_w receives a gradient too, and that gradient is the same loss's
gradient through its targets (c/T t (v - <t, v>) per row, with v = -log softmax(z_s) for a cross-entropy, or
log t - log softmax(z_s) for a KL divergence), the targets were not held constant: the step also moves the teacher's
predictions towards the student's and, under a cross-entropy, towards its most confident class, so they drift and
collapse (confirmation bias).

A loop may also run both views through one forward, ``logits = model(torch.cat([x_weak, x_strong]))``, and take
``logits[:B].softmax(-1)`` as the targets of ``logits[B:]`` (FixMatch, Sohn et al. 2020, written with one batch):
the targets are then rows of the same output. A forward's rows are read so, as two halves, two adjacent thirds, or
the two equal blocks of mu x B rows that end the batch after B labelled rows (``torch.cat([x_l, x_weak,
x_strong])``, FixMatch's mu unlabelled examples per labelled one), in either order, when the two
blocks' outputs agree row by row as two views of each example do (:func:`_within_one_forward`), for outputs of
:data:`WITHIN_ELEMENTS` elements at most.

The Pi-model (Laine & Aila 2017) back-propagates through both of its branches on purpose; its loss, a squared error
between the two softmaxes (or outputs), sends no gradient of the form c (softmax(z_s) - t) and is not read here.
A hard pseudo-label (``argmax``) sends the weak view no gradient at all."""

from __future__ import annotations

import math

import torch

from trainwell.doctor.verdict import Verdict

#: the relative residual under which a gradient is read as the form it is fitted to
FIT = 1e-3
#: float32's rounding of a saturated softmax's gradient, relative to the scored side's gradient; a target side
#: whose gradient is below SMALLEST of the scored side's is not read
ROUNDING, SMALLEST = 1e-6, 1e-4
#: the temperatures searched for sharpened targets, softmax(z / T)
LOWEST_T, HIGHEST_T = 0.05, 20.0
#: the most elements of one forward's outputs read for targets among its own rows
WITHIN_ELEMENTS = 1 << 16
#: the most unlabelled examples per labelled one (FixMatch's mu) read in a batch of labelled and two views
MOST_MU = 16
#: the mean cosine of two blocks' centred outputs, row by row, from which they read as two views of one batch
AGREE = 0.25


def _soft_target_fits(zs: torch.Tensor, gs: torch.Tensor, zt: torch.Tensor,
                      temps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, relative residual) of the least-squares fit gs = c (softmax(zs) - softmax(zt / T)), one per temperature
    in ``temps`` (float64 inputs)."""
    r = zs.softmax(-1) - (zt / temps[:, None, None]).softmax(-1)
    rr = (r * r).sum((1, 2))
    c = (gs * r).sum((1, 2)) / rr.clamp_min(1e-300)
    resid = (gs - c[:, None, None] * r).flatten(1).norm(dim=1) / gs.norm()
    return c, torch.where(rr > 0, resid, math.inf)


def _fit_temperature(mismatch) -> float:
    """The T in [:data:`LOWEST_T`, :data:`HIGHEST_T`] where ``mismatch`` (of a tensor of temperatures, one value
    each) is lowest: a grid on log T refined twice around its best point; T = 1 exactly when it fits (:data:`FIT`)."""
    if float(mismatch(torch.ones(1, dtype=torch.float64))[0]) <= FIT:
        return 1.0
    centre, half = math.log(LOWEST_T * HIGHEST_T) / 2, math.log(HIGHEST_T / LOWEST_T) / 2
    for _ in range(3):  # 49 points, then 41 around the best, twice: log T to 1e-4 of the range
        points = 49 if half > 3 else 41
        logs = torch.linspace(centre - half, centre + half, points, dtype=torch.float64)
        centre = float(logs[int(mismatch(logs.exp()).argmin())])
        half = 2 * half / (points - 1)
    return math.exp(centre)


def read_temperature(zs: torch.Tensor, gs: torch.Tensor, zt: torch.Tensor) -> tuple[float, float] | None:
    """(T, c) when the gradient ``gs`` on the outputs ``zs`` is c (softmax(zs) - softmax(zt / T)) for a c > 0 and a
    T in [:data:`LOWEST_T`, :data:`HIGHEST_T`] (to :data:`FIT`): a cross-entropy or KL divergence whose targets are
    another forward's softmax, sharpened at T; else None. Float64 inputs, the rows the loss reached."""
    t = _fit_temperature(lambda temps: _soft_target_fits(zs, gs, zt, temps)[1])
    c, resid = (float(v[0]) for v in _soft_target_fits(zs, gs, zt, torch.tensor([t], dtype=torch.float64)))
    return (t, c) if c > 0 and resid <= FIT else None


def target_side_gradients(zs: torch.Tensor, zt: torch.Tensor, temps: torch.Tensor, c: torch.Tensor,
                          kind: str) -> torch.Tensor:
    """The gradient on the target forward's outputs ``zt`` of c x (a cross-entropy, ``kind`` 'ce', or a KL
    divergence, 'kl') of softmax(zs) against t = softmax(zt / T): c/T t (v - <t, v>) per row; one per temperature
    in ``temps`` (with its c)."""
    t = (zt / temps[:, None, None]).softmax(-1)
    v = -zs.log_softmax(-1).expand_as(t)
    if kind == "kl":
        v = v + t.clamp_min(1e-300).log()
    return (c / temps)[:, None, None] * t * (v - (t * v).sum(-1, keepdim=True))


def differentiated_soft_target(pairs: list[tuple[torch.Tensor, torch.Tensor | None]]) -> dict | None:
    """On an observed step (``pairs``: each training forward's outputs and the gradient the step applies to them): a
    forward whose gradient reads as a cross-entropy or KL divergence against another forward's softmax
    (:func:`read_temperature`), that other forward receiving exactly that loss's gradient through its targets
    (:func:`target_side_gradients`). Its temperature, the loss ('cross-entropy' or 'KL divergence'), the rows and
    the target side's gradient norm over the scored side's (``within``: the two sides rows of one forward's
    outputs, :func:`_within_one_forward`); None otherwise."""
    if not 1 <= len(pairs) <= 8:
        return None
    for i, (zs, gs) in enumerate(pairs):
        if gs is None or zs.dim() != 2 or zs.shape[1] < 2 or not gs.is_floating_point() or not bool(gs.any()):
            continue
        for j, (zt, gt) in enumerate(pairs):
            if j == i or gt is None or zt.shape != zs.shape or not bool(gt.any()):
                continue
            read = _read_pair(zs.detach().double(), gs.detach().double(), zt.detach().double(), gt.detach().double())
            if read is not None:
                return read
    return next((r for z, g in pairs if (r := _within_one_forward(z, g)) is not None), None)


def _blocks(u: torch.Tensor) -> list[tuple[slice, slice]]:
    """The (scored rows, target rows) of one forward's outputs read for targets among them (``u``: the rows'
    centred outputs, unit length): its two halves, two adjacent thirds, and the two blocks of mu x B rows that end
    a batch after B labelled rows (mu from 2 to :data:`MOST_MU`), either way round; only blocks whose rows agree,
    row by row (:func:`_agreement`), as two views of each example do."""
    n = len(u)
    blocks = [(0, n // 2)] if n % 2 == 0 else []
    if n % 3 == 0:
        blocks += [(n // 3, n // 3), (0, n // 3)]
    blocks += [(n // (1 + 2 * mu), mu * n // (1 + 2 * mu)) for mu in range(2, MOST_MU + 1) if n % (1 + 2 * mu) == 0]
    pairs = []
    for a, m in blocks:
        if _agreement(u, a, m) >= AGREE:
            first, second = slice(a, a + m), slice(a + m, a + 2 * m)
            pairs += [(second, first), (first, second)]
    return pairs


def _agreement(u: torch.Tensor, a: int, m: int) -> float:
    """The mean cosine between rows a..a+m and the rows m later of the centred outputs ``u`` (unit rows)."""
    return float((u[a : a + m] * u[a + m : a + 2 * m]).sum(1).mean())


def _within_one_forward(z: torch.Tensor, g: torch.Tensor | None) -> dict | None:
    """:func:`differentiated_soft_target` on the rows of one forward's outputs: the weak and the strong view
    concatenated into one batch, the targets the softmax of the weak view's rows (:func:`_blocks`)."""
    if g is None or z.dim() != 2 or z.shape[1] < 2 or len(z) < 4 or z.numel() > WITHIN_ELEMENTS or \
            not g.is_floating_point() or g.shape != z.shape:
        return None
    z, g = z.detach().double(), g.detach().double()
    if not bool(torch.isfinite(z).all()):
        return None
    u = z - z.mean(0)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
    for scored, target in _blocks(u):
        if not bool(g[scored].any()) or not bool(g[target].any()):
            continue
        read = _read_pair(z[scored], g[scored], z[target], g[target])
        if read is not None:
            return {**read, "within": True}
    return None


def _read_pair(zs, gs, zt, gt) -> dict | None:
    """:func:`differentiated_soft_target` on one (scored, target) pair of forwards, float64. The temperature is
    fitted to both sides' gradients at once: once the targets saturate, the scored side alone hardly tells it."""
    rows = gs.abs().sum(1) > 0  # rows a confidence mask left out send no gradient to either side
    if int(rows.sum()) < 2 or float(gt.norm()) <= SMALLEST * float(gs.norm()) or not \
            bool(torch.isfinite(zs).all() and torch.isfinite(zt).all()):
        return None
    zs, gs, zt, gt = zs[rows], gs[rows], zt[rows], gt[rows]
    if read_temperature(zs, gs, zt) is None:
        return None
    room = FIT * float(gt.norm()) + ROUNDING * float(gs.norm())
    for kind, loss in (("ce", "cross-entropy"), ("kl", "KL divergence")):
        def mismatch(temps, kind=kind):
            c, resid = _soft_target_fits(zs, gs, zt, temps)
            off = (gt - target_side_gradients(zs, zt, temps, c, kind)).flatten(1).norm(dim=1)
            return torch.where(c > 0, torch.maximum(resid, off * FIT / room), math.inf)  # each side, its tolerance
        temperature = _fit_temperature(mismatch)
        if float(mismatch(torch.tensor([temperature], dtype=torch.float64))[0]) <= FIT:
            return {"temperature": temperature, "loss": loss, "rows": int(rows.sum()),
                    "ratio": float(gt.norm()) / float(gs.norm())}
    return None


def pseudo_target_verdict(steps: list[dict]) -> Verdict | None:
    """A warning when two or more observed steps read a consistency loss whose soft targets (another forward's
    softmax) carry its gradient (:func:`differentiated_soft_target`, each step's ``soft_target``); else None."""
    reads = [s["soft_target"] for s in steps if s.get("soft_target")]
    if len(reads) < 2:
        return None
    r = reads[len(reads) // 2]
    sharpened = "" if r["temperature"] == 1.0 else f", sharpened at T = {r['temperature']:.2g}"
    other = "other rows of the same forward (two views in one batch)" if r.get("within") else "another forward"
    return Verdict("loop: loss", "warn", f"a {r['loss']} against the model's own softmax on {other}"
                   f"{sharpened} (read from the gradients of {len(reads)} of {len(steps)} observed steps) also "
                   f"differentiates its targets: that forward receives the loss's gradient through them "
                   f"({r['ratio']:.2g}x as large as the scored outputs')",
                   "pseudo-labels or consistency targets held constant",
                   "compute the targets under torch.no_grad() (or .detach() them): with a gradient, the step also "
                   "pulls the teacher's predictions towards the student's and towards confidence, and they "
                   "collapse; a symmetric squared error between both views (the Pi-model, Laine & Aila 2017) trains "
                   "both branches on purpose and is not read as this")
