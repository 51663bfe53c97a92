"""What loss the loop really back-propagates, read from the gradient that reaches the model's output.

For softmax cross-entropy the gradient of the loss with respect to example i's logits is
``a_i (softmax(z_i) - e_{y_i})`` (Bridle 1990; cs231n), where ``a_i`` is the example's weight in the loss: 1/N for
a mean over N examples, 1 for a sum, w_y / sum w for class weights, 0 for an ignored target. The label is the
only negative entry, so ``y_i`` and ``a_i`` can be read back from the gradient alone, without the targets:
``a_i = sum_{c != y} g_ic / sum_{c != y} p_ic``. If the whole gradient has this form, the loss is cross-entropy on
these logits and ``sum_i a_i`` is its total weight: 1 for a mean over the step's examples (also with gradient
accumulation when each micro-batch's loss is divided by k), N for ``reduction="sum"``, k for k accumulated
micro-batches that were not divided by k, 2 for a loss counted twice. The same test along the batch axis finds a
softmax taken over dim 0; logits that are already probabilities reveal a softmax applied twice. NLL on
log-probabilities has gradient ``-a_i e_{y_i}``. Outputs with the classes on dim 1 (``(B, C, H, W)``, ``(B, C, T)``)
whose gradient has the form only over runs of C consecutive values in row-major order were flattened with
``reshape(-1, C)`` without moving the class axis last: each "row" the loss saw mixes pixels, not classes.

Example:
    >>> import torch, torch.nn.functional as F
    >>> z = torch.randn(8, 5, requires_grad=True)
    >>> F.cross_entropy(z, torch.randint(0, 5, (8,))).backward()
    >>> form = read_form(z.detach(), z.grad)
    >>> form["form"], round(form["weight"], 6)
    ('cross_entropy', 1.0)
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.clamped_scores import clamped
from trainwell.doctor.form_value import form_value
from trainwell.doctor.policy_gradient import signed_weights
from trainwell.doctor.underflowed_rows import counted_at_shared_weight, split_underflowed

TOLERANCE = 1e-3  # relative residual of the gradient against the fitted form


def _fit_softmax(z: torch.Tensor, g: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(relative residual, per-row weights a) of g ~ a (softmax(z) - onehot(argmin g)) over rows of (N, C)."""
    p = torch.softmax(z, 1)
    mask = torch.zeros_like(p).scatter_(1, g.argmin(1, keepdim=True), 1.0)
    num = (g * (1 - mask)).sum(1)
    den = (p * (1 - mask)).sum(1).clamp_min(1e-30)
    a = num / den
    resid = float((g - a[:, None] * (p - mask)).norm() / g.norm().clamp_min(1e-30))
    return resid, a


#: the round-off of p(label) - 1 computed in float32 (p(label) near 1): a few units of float32's epsilon
LABEL_ROUNDING = 1e-6


def _softmax_off_label(z: torch.Tensor, g: torch.Tensor) -> float:
    """Relative residual of g ~ a softmax(z) over each row's entries other than its label (argmin g), inf when a
    row's label entry misses -a (1 - p(label)) by more than float32 round-off (:data:`LABEL_ROUNDING` x a).
    Cross-entropy's gradient off the label is computed without cancellation; at the label, p - 1 of a saturated
    row is rounded, and that round-off alone can exceed the fit's tolerance."""
    p = torch.softmax(z, 1)
    label = torch.zeros_like(p).scatter_(1, g.argmin(1, keepdim=True), 1.0)
    off = 1 - label
    a = (g * off).sum(1) / (p * off).sum(1).clamp_min(1e-30)
    missed = ((g - a[:, None] * (p - label)) * label).sum(1).abs()
    if bool((missed > LABEL_ROUNDING * a.abs()).any()):
        return math.inf
    return float(((g - a[:, None] * p) * off).norm() / (g * off).norm().clamp_min(1e-30))


def _proportional_to_label_probability(z: torch.Tensor, g: torch.Tensor, a: torch.Tensor) -> bool:
    """Whether the per-row weights of the softmax form are the label's probability times one constant: the
    gradient of -p(label) (or of -(t * softmax(z)).sum(1) with smoothed targets t), a cross-entropy whose log is
    missing. Cross-entropy's own weights are equal (a mean) or set by the data (class or sample weights)."""
    if len(a) < 4:
        return False
    p_label = torch.softmax(z, 1).gather(1, g.argmin(1, keepdim=True)).squeeze(1)
    c = a / p_label
    return float(c.std() / c.mean()) < 1e-3 and float(a.std() / a.mean()) > 1e-2


def rises_with_label_probability(z: torch.Tensor, g: torch.Tensor, a: torch.Tensor) -> bool:
    """Whether the per-row weights of the softmax form differ and rise with the label's probability, one weight
    per value of it (rows sorted by p(label) never see their weight fall, and most see it rise): a loss that
    grows slower than cross-entropy, a function of p(label) alone (generalized cross-entropy (1 - p^q) / q,
    weights p^q; the mean absolute error 2 (1 - p), weights 2p; symmetric cross-entropy, CE plus -A (1 - p)).
    Class and sample weights do not follow p(label) so; a focal term falls with it."""
    if len(a) < 8 or float(a.std() / a.mean().abs().clamp_min(1e-30)) < 1e-2:
        return False
    p_label = torch.softmax(z, 1).gather(1, g.argmin(1, keepdim=True)).squeeze(1)
    ordered = a[p_label.argsort()]
    tol = 1e-6 * float(ordered.abs().max())
    steps = ordered[1:] - ordered[:-1]
    # most neighbours rise: equal weights with one outlier (a saturated row's rounded gradient) are not a rise
    return bool((steps >= -tol).all()) and float((steps > tol).double().mean()) >= 0.5


def _fit_smoothed(z: torch.Tensor, g: torch.Tensor) -> tuple[float, torch.Tensor, float]:
    """(relative residual, per-row weights, epsilon) of label-smoothed cross-entropy with one weight a for every
    row (a mean): g = a (softmax(z) - (1 - eps) onehot(y) - eps / C) (Szegedy et al. 2016). Off the label, g is
    affine in p with slope a and intercept -a eps / C: one least-squares line over every row's other classes."""
    p = torch.softmax(z, 1)
    c = z.shape[1]
    label = torch.zeros_like(p).scatter_(1, g.argmin(1, keepdim=True), 1.0)
    off = label == 0
    ps, gs = p[off], g[off]
    var = float(((ps - ps.mean()) ** 2).sum())
    if var <= 0 or len(ps) < 3:
        return math.inf, torch.zeros(len(g), dtype=g.dtype), math.nan
    a = float(((ps - ps.mean()) * (gs - gs.mean())).sum()) / var
    eps = -(float(gs.mean()) - a * float(ps.mean())) * c / a if a else math.nan
    pred = a * (p - (1 - eps) * label - eps / c)
    return float((g - pred).norm() / g.norm().clamp_min(1e-30)), torch.full((len(g),), a, dtype=g.dtype), eps


def smoothed_floor(eps: float, classes: int) -> float:
    """The lowest value a mean cross-entropy with label smoothing ``eps`` over ``classes`` classes can reach: the
    entropy of its smoothed targets (1 - eps + eps / C on the label, eps / C elsewhere), reached when the softmax
    equals them."""
    on, off = 1 - eps + eps / classes, eps / classes
    return -(on * math.log(on) + (classes - 1) * off * math.log(off)) if 0 < eps < 1 and classes > 1 else 0.0


def _fit_nll(g: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(relative residual, weights) of g ~ -a onehot(argmin g)."""
    idx = g.argmin(1, keepdim=True)
    a = -g.gather(1, idx).squeeze(1)
    pred = torch.zeros_like(g).scatter_(1, idx, -a[:, None])
    return float((g - pred).norm() / g.norm().clamp_min(1e-30)), a


def _nll_weights(z: torch.Tensor, g: torch.Tensor, a: torch.Tensor) -> str | None:
    """What a gradient of NLL's form ``-a_i e_{y_i}`` (one output per row, pushed up) is, from its weights a_i:
    'nll' when they are NLL's (equal on every row: a mean or a sum; or equal within each label's rows: class
    weights); 'log_of_probabilities' when a_i z_{i,y_i} is one constant on outputs that are probability rows: the
    gradient of -log z_y, cross-entropy on the model's own probabilities with the log taken in the loss
    (``nll_loss(log(p), y)``); None otherwise (a regression of one chosen output per row towards targets above
    it, a hinge on the label's score: their weights follow each row's error)."""
    top = float(a.abs().max())
    if float(a.max() - a.min()) <= 1e-3 * top:
        return "nll"
    label = g.argmin(1)
    groups = [a[label == c] for c in label.unique()]
    if len(groups) < len(a) and all(float(w.max() - w.min()) <= 1e-3 * top for w in groups):
        return "nll"
    p = z.gather(1, label[:, None]).squeeze(1)
    if bool((z >= 0).all()) and bool(((z.sum(1) - 1).abs() < 1e-3).all()) and bool((p > 0).all()):
        c = a * p
        if float(c.max() - c.min()) <= 1e-2 * float(c.abs().max()):
            return "log_of_probabilities"
    return None


def _fit_over_batch(z: torch.Tensor, g: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(relative residual, weights) of NLL/cross-entropy with the softmax over dim 0 (the batch): column c's
    gradient is a (n_c softmax_0(z)[:, c] - [y = c]) with n_c the examples of class c (y = argmin of each row)."""
    mask = torch.zeros_like(g).scatter_(1, g.argmin(1, keepdim=True), 1.0)
    pred = torch.softmax(z, 0) * mask.sum(0, keepdim=True) - mask
    a = float((g * pred).sum() / (pred * pred).sum().clamp_min(1e-30))
    resid = float((g - a * pred).norm() / g.norm().clamp_min(1e-30))
    return resid, torch.full((len(g),), a, dtype=g.dtype)


def _fit_softmax_twice(z: torch.Tensor, g: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(relative residual, weights) of cross-entropy applied to softmax(z): g_i = diag(p)(v - p.v) with
    v = a (softmax(p) - e_y), p = softmax(z). v is recovered from g (it sums to zero) and fitted like
    :func:`_fit_softmax` on p."""
    p = torch.softmax(z, 1)
    u = g / p.clamp_min(1e-30)
    v = u - u.sum(1, keepdim=True) / u.shape[1]
    return _fit_softmax(p, v)


def _rows(z: torch.Tensor, g: torch.Tensor) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Candidate (layout, logits, grad) as (N, C) matrices: classes last, classes on dim 1, the batch axis."""
    out = []
    if z.dim() >= 2:
        c = z.shape[-1]
        out.append(("last", z.reshape(-1, c), g.reshape(-1, c)))
    if z.dim() >= 3:
        zt, gt = z.movedim(1, -1), g.movedim(1, -1)
        out.append(("dim1", zt.reshape(-1, zt.shape[-1]), gt.reshape(-1, gt.shape[-1])))
    if z.dim() == 2:
        out.append(("batch", z, g))
    if z.dim() >= 3 and z.shape[1] != z.shape[-1]:  # reshape(-1, C) of (B, C, ...) without permute
        out.append(("scrambled", z.reshape(-1, z.shape[1]), g.reshape(-1, z.shape[1])))
    return out


def read_form(z: torch.Tensor, g: torch.Tensor) -> dict:
    """Classify the loss from one output tensor ``z`` and the gradient ``g`` the loss sent back to it (3 classes
    or more: with 2, any zero-sum gradient fits the softmax form).

    Returns a dict: ``form`` ('cross_entropy', 'cross_entropy_over_batch', 'cross_entropy_on_probabilities',
    'nll' (weights equal per row or per label), 'log_of_probabilities' (NLL's form on probability rows, weighted
    by 1 / p(label): -log p(label), the log taken in the loss),
    'scrambled_classes' (cross-entropy or NLL over runs of C consecutive values of (B, C, ...) outputs),
    'probability_not_log' (the softmax form weighted by each label's probability: -p(label), a missing log),
    'signed_weights' (the softmax form with per-example weights of both signs: a policy gradient's
    -log p(action) x advantage, with or without an entropy bonus; :mod:`~trainwell.doctor.policy_gradient`),
    'two_classes' (a zero-sum gradient over 2 classes: a classification loss of unknown form and weight)
    or None when unrecognised), ``weight`` (sum of the per-example weights a_i), ``rows`` (examples that
    received a gradient), ``classes``, and for the forms with positive weights ``spread`` (largest / smallest);
    label-smoothed cross-entropy reads as 'cross_entropy' with ``smoothing`` (its epsilon); the two forms that are
    bugs, 'nll' and 'cross_entropy_on_probabilities', carry ``implied``, the value such a loss gives on these rows
    (:mod:`~trainwell.doctor.form_value`).
    """
    # low-precision outputs (autocast) carry rounding in the gradient: the fit is judged at that precision, and the
    # best-fitting form wins (at a loose tolerance more than one can pass)
    tol = max(TOLERANCE, 4 * torch.finfo(g.dtype).eps) if g.is_floating_point() else TOLERANCE
    dtype = g.dtype
    z, g = z.detach().double(), g.detach().double()
    none = {"form": None, "weight": None, "rows": 0, "classes": z.shape[-1] if z.dim() else 0, "bounded": None}
    if z.shape != g.shape or z.dim() < 2 or not bool(torch.isfinite(g).all()) or float(g.abs().sum()) == 0.0:
        return none
    if min(z.shape[-1], z.shape[1]) < 3:
        return _two_classes(z, g, tol) or none
    for layout, zz, gg in _rows(z, g):
        live = gg.abs().sum(1) > 0
        if int(live.sum()) == 0:
            continue
        zl, gl = zz[live], gg[live]
        if layout == "batch":
            if z.shape[0] == z.shape[1]:  # (B, B) similarities (a contrastive loss): either axis may be the classes
                continue
            resid, a = _fit_over_batch(z, g)
            if resid < tol and float(a[0]) > 0:
                return {"form": "cross_entropy_over_batch", "weight": float(a[0]) * len(z), "rows": len(z),
                        "classes": z.shape[1], "bounded": None}
            continue
        readable, under = split_underflowed(zz, gg, dtype)
        if int(under.sum()) and int(readable.sum()) and not bool((live & ~readable & ~under).any()):
            # rows saturated on their label sent a gradient of zeros and subnormals: their weight is the others'
            shared = counted_at_shared_weight(
                _read_rows(layout, z, zz, zz[readable], gg[readable], int(readable.sum()), tol), int(under.sum()))
            if shared is not None:
                return shared
        found = _read_rows(layout, z, zz, zl, gl, int(live.sum()), tol)
        if found is not None:
            return found
    return none


TWICE_SPREAD = 100.0
"""The largest ratio of per-row weights a double softmax's fit may need: a mean gives every row one weight, class
weights a few. Rows nearly saturated on one class (a well-fitted binary cross-entropy on one-hot targets) leave the
softmax's Jacobian near 0, and the fit then absorbs any small gradient with weights spread over 1e3 to 1e6."""
SATURATED = 1e-3
"""Rows whose softmax puts all but this much on one class: where every row is, a double softmax's gradient vanishes
(softmax(p) is flat near a one-hot p) and any loss that fits its batch sends a gradient of its shape: the form is
not read from such a step (a double softmax barely trains there; its earlier steps show it)."""

NEARLY_EQUAL = 0.01
"""Logits of every row within this range of each other: softmax's Jacobian is (I - 1/C) / C up to 1%, and
cross-entropy on z cannot be told from cross-entropy on softmax(z) by their gradients."""


def _read_rows(layout: str, z: torch.Tensor, zz: torch.Tensor, zl: torch.Tensor, gl: torch.Tensor, rows: int,
               tol: float) -> dict | None:
    """The form of one layout's (N, C) rows (``zl, gl``: those that received a gradient), or None: the softmax forms
    with positive weights (the best-fitting one), label-smoothed cross-entropy, a policy gradient's signed weights."""
    fits = []
    resid, a = _fit_softmax(zl, gl)
    rounded = _softmax_off_label(zl, gl) < 0.01 * tol  # saturated rows: exact but for p(label) - 1's round-off
    if bool((zz >= 0).all()) and bool(((zz.sum(1) - 1).abs() < max(1e-4, tol)).all()):
        fits.append((resid, "cross_entropy_on_probabilities", a, None))
    else:
        fits.append((min(resid, 0.5 * tol) if rounded else resid, "cross_entropy", a, _bounded(zz)))
    resid, a = _fit_nll(gl)
    fits.append((resid, "nll", a, None))
    resid, a = _fit_softmax_twice(zl, gl)
    twice = (resid, "cross_entropy_on_probabilities", a, None)
    positive = a[a > 0]
    saturated = bool((torch.softmax(zl, 1).amax(1) > 1 - SATURATED).all())
    if not saturated and (not len(positive) or float(a.max() / positive.min()) <= TWICE_SPREAD):
        fits.append(twice)
    # weights positive up to the precision's round-off (a float16 row the model fits well reads slightly < 0)
    fits = [f for f in fits if f[0] < tol and bool((f[2] > -0.01 * f[2].abs().max()).all()) and
            bool((f[2] > 0).any())]
    if any(f[1] == "cross_entropy" for f in fits) and float((zl.amax(1) - zl.amin(1)).max()) < NEARLY_EQUAL:
        # logits nearly equal within each row (a tiny initialization) make softmax's Jacobian (I - 1/C) / C, and
        # cross-entropy on softmax(z) then fits too, at C times the weight: the plain reading is kept, never a fail
        # decided by round-off
        fits = [f for f in fits if f is not twice]
    if rounded and any(f[1] == "cross_entropy" for f in fits):
        # rows saturated on one class (a model that fits its batch): the other classes' gradient is a p_i exactly,
        # and a softmax-twice fit only absorbs the round-off of p - 1 at the label; the plain reading is kept
        fits = [f for f in fits if f is not twice]
    smoothed = _smoothed_form(zl, gl, zz, rows, tol) if layout != "scrambled" else None
    if fits and smoothed is not None and smoothed[1]["smoothing"] >= 0.005 and \
            all(smoothed[0] < 0.5 * f[0] for f in fits):
        return smoothed[1]  # label smoothing fits far better than any of them (the double softmax can come close)
    if fits:
        chosen = min(fits, key=lambda f: f[0])
        _, form, a, bounded = chosen
        implied = form_value(form, zl, gl, a, softmax_first=chosen is twice)
        if form == "nll":
            form = _nll_weights(zl, gl, a)
            if form is None:  # one chosen output per row with weights that are not NLL's: a regression, a hinge
                return None
            if form == "log_of_probabilities":
                a = a * zl.gather(1, gl.argmin(1, keepdim=True)).squeeze(1)
        if layout == "scrambled":
            form, bounded = "scrambled_classes", None
        elif form == "cross_entropy" and _proportional_to_label_probability(zl, gl, a):
            form = "probability_not_log"
        return {"form": form, "weight": float(a.sum()), "rows": rows, "classes": zz.shape[1],
                "bounded": bounded, "spread": float(a.max() / a[a > 0].min()),
                "implied": implied if form in ("nll", "cross_entropy_on_probabilities") else None,
                "label_weights": label_weights(gl, a) if form in ("cross_entropy", "nll") else None,
                "slower_than_ce": form == "cross_entropy" and rises_with_label_probability(zl, gl, a)}
    if smoothed is not None:
        return smoothed[1]
    if layout == "last" and z.dim() == 2:  # -log p(a_i) x advantage_i on the model's own samples
        return signed_weights(zl, gl, tol)
    return None


def _smoothed_form(zl: torch.Tensor, gl: torch.Tensor, zz: torch.Tensor, rows: int, tol: float) -> \
        tuple[float, dict] | None:
    """(residual, form) of label-smoothed cross-entropy when it fits the rows, else None."""
    resid, a, eps = _fit_smoothed(zl, gl)
    if resid < tol and 0.0 < eps < 1.0 and float(a[0]) > 0:
        return resid, {"form": "cross_entropy", "weight": float(a.sum()), "rows": rows, "classes": zz.shape[1],
                       "bounded": _bounded(zz), "spread": 1.0, "smoothing": eps}
    return None


def label_weights(g: torch.Tensor, a: torch.Tensor, most: int = 1024) -> torch.Tensor | None:
    """The mean weight a_i of each label's rows (the label: each row's negative entry, ``g.argmin(1)``), NaN for a
    label with no row; class weights ``w`` of ``cross_entropy(weight=w)`` read back up to one factor per step
    (a_i = w_{y_i} / sum_j w_{y_j}). None over more than ``most`` classes (a vocabulary)."""
    if g.shape[1] > most:
        return None
    label = g.argmin(1)
    rows = torch.bincount(label, minlength=g.shape[1]).double()
    total = torch.zeros(g.shape[1], dtype=torch.float64).index_add_(0, label, a.double())
    return torch.where(rows > 0, total / rows.clamp_min(1), torch.full_like(total, math.nan)).float()


def bce_on_bounded(z: torch.Tensor, g: torch.Tensor) -> str | None:
    """How outputs ``z`` are bounded when the gradient ``g`` the loss sent back is binary cross-entropy *with
    logits* averaged over every element: g = (sigmoid(z) - y) / numel with targets y in {0, 1}. Outputs already in
    [0, 1] (a Sigmoid after the last layer) then pass through a second sigmoid inside the loss: sigmoid(z) stays
    in [0.5, 0.73] and the loss cannot fall far. None when the form or the bound does not hold."""
    z, g = z.detach().double(), g.detach().double()
    if z.shape != g.shape or z.numel() < 2 or not bool(torch.isfinite(g).all()) or float(g.abs().sum()) == 0.0:
        return None
    bounded = _bounded(z.reshape(len(z), -1)) if z.dim() else None
    if bounded is None or not bounded.startswith("all in [0, 1]"):
        return None
    y = torch.sigmoid(z) - g * z.numel()
    if float(torch.minimum(y.abs(), (y - 1).abs()).max()) > 1e-3 and not _pos_weighted(z, g):
        return None
    return bounded


def always_true_columns(z: torch.Tensor, g: torch.Tensor | None) -> list[int] | None:
    """The columns of (B, K) outputs (K >= 2, B >= 8) whose binary target is 1 on every row, when ``g`` is binary
    cross-entropy with logits averaged over every element: the targets are then y = sigmoid(z) - g * numel, each 0
    or 1. None when that form does not hold (another loss, soft targets, a ``pos_weight``)."""
    if g is None or z.dim() != 2 or z.shape[1] < 2 or len(z) < 8 or g.shape != z.shape or \
            not bool(torch.isfinite(g).all()):
        return None
    y = torch.sigmoid(z.detach().double()) - g.detach().double() * z.numel()
    if float(torch.minimum(y.abs(), (y - 1).abs()).max()) > 1e-3:
        return None
    return [int(i) for i in (y > 0.5).all(0).nonzero().flatten()]


def _pos_weighted(z: torch.Tensor, g: torch.Tensor) -> bool:
    """Whether ``g`` is binary cross-entropy with logits and a ``pos_weight`` p per label (the last dimension),
    averaged over every element: g = sigmoid(z) / numel where the target is 0 and p (sigmoid(z) - 1) / numel
    where it is 1, with one p > 0 per label over the rows that hold its positives."""
    s, gn = torch.sigmoid(z), g * z.numel()
    negative = (gn - s).abs() <= 1e-3 * s.abs().clamp_min(1e-6)
    ratio = (gn / (s - 1)).reshape(-1, z.shape[-1]) if z.dim() else None
    if ratio is None or bool(negative.all()):
        return False
    positive = ~negative.reshape(-1, z.shape[-1])
    for c in range(ratio.shape[1]):
        p = ratio[positive[:, c], c]
        if p.numel() and (float(p.min()) <= 0 or float(p.max() - p.min()) > 1e-3 * float(p.mean())):
            return False
    return True


def _two_classes(z: torch.Tensor, g: torch.Tensor, tol: float) -> dict | None:
    """Two classes: every zero-sum gradient fits the softmax form (a multiclass hinge's too), so neither the form
    nor the weight can be read; a classification loss (a zero-sum gradient per row) on bounded outputs can."""
    if z.dim() != 2 or z.shape[1] != 2:
        return None
    if float(g.sum(1).abs().max()) > tol * float(g.abs().max()):
        return None
    return {"form": "two_classes", "weight": 0.0, "rows": len(z), "classes": 2, "bounded": _bounded(z)}


#: the question a loss's verdict asks of scores that are never negative
NON_NEGATIVE = "a ReLU (or other non-negative activation) after the last layer?"
#: the fewest scores of one step that, none below 0, read as a non-negative map after the last layer: raw logits,
#: whose mean over the classes stays near the init's 0, put about half of them below 0 (all 32 above by chance:
#: 2^-32)
NEVER_NEGATIVE_SCORES = 32


def _bounded(z: torch.Tensor) -> str | None:
    """How logits ``z`` (N, C) are bounded when an activation follows the last layer: all in [0, 1] (a Sigmoid),
    or non-negative with many exact zeros (a ReLU), or tied at both ends of their range (a clamp,
    :func:`~trainwell.doctor.clamped_scores.clamped`), or none below 0 over at least
    :data:`NEVER_NEGATIVE_SCORES` of them, some above 1 (a Softplus, exp or other non-negative map); None for raw
    logits. A softmax loss's gradient sums to 0 over each row's classes, so it never moves the scores' mean over
    the classes (their shift, which softmax ignores): raw logits keep the init's mean near 0 and some fall below
    it on every step."""
    pinned = clamped(z)
    if pinned is not None:
        return pinned
    if float(z.min()) < 0:
        return None
    zeros = float((z == 0).double().mean())
    if zeros >= 0.05:
        return f"non-negative, {zeros:.0%} exactly 0 ({NON_NEGATIVE})"
    if float(z.max()) > 1:
        if z.numel() < NEVER_NEGATIVE_SCORES:
            return None
        return f"non-negative, none of {z.numel()} below 0 (the least {float(z.min()):.3g}; {NON_NEGATIVE})"
    if z.dim() == 2 and bool(((z.sum(1) - 1).abs() < 1e-4).all()):
        return "all in [0, 1], each row summing to 1 (a Softmax after the last layer?)"
    return "all in [0, 1] (a Sigmoid after the last layer?)"


def head_problem(z: torch.Tensor, g: torch.Tensor) -> str | None:
    """What is wrong with one of a model's other heads (a second task's class scores), read as :func:`read_form`
    reads the class scores: 'probabilities' when a softmax-form loss (cross-entropy) is applied to rows of
    probabilities (a Softmax ends the head; 3 classes or more), the bound when such a loss gets bounded scores (a
    Sigmoid, ReLU, or with 2 classes a Softmax ends it), None for raw logits or a loss of another form (a
    regression head's)."""
    f = read_form(z, g)
    if f["form"] == "cross_entropy_on_probabilities":
        return "probabilities"
    return f["bounded"] if f["form"] in ("cross_entropy", "two_classes") else None


def one_output_per_row(z: torch.Tensor, g: torch.Tensor | None) -> bool:
    """Whether the loss reached exactly one of the A >= 2 outputs of each (B, A) row, not always the same one, with
    gradients of different sizes: a value regressed at a chosen output, as a Q-learning TD error regresses Q(s, a)
    gathered at the actions taken towards targets the network itself computes (Mnih et al. 2015). A loss on class
    scores reaches every output of a row (softmax), and a hinge on the label's score sends one size to each."""
    if g is None or z.dim() != 2 or z.shape[1] < 2 or g.shape != z.shape or not g.is_floating_point():
        return False
    hit = g != 0
    live = hit.any(1)
    if int(live.sum()) < 2 or bool((hit[live].sum(1) != 1).any()):
        return False
    sizes = g[hit].abs()
    return len(set(hit[live].double().argmax(1).tolist())) > 1 and float(sizes.max()) > 1.5 * float(sizes.min())


def differentiated_target(pairs: list[tuple[torch.Tensor, torch.Tensor | None]]) -> float | None:
    """The discount when a TD loss's target was differentiated too: the first output regressed at one chosen
    output per row (:func:`one_output_per_row`) and a later forward's outputs (the next states') receiving, at one
    output per row, the first's gradient times -gamma (0 < gamma <= 1; 0 on terminal rows): ``r + gamma *
    q(s').max(1)`` computed with gradients. Q-learning's update is a semi-gradient one (Sutton & Barto 2018,
    section 9.3): the target is a constant. None otherwise."""
    if len(pairs) < 2 or not one_output_per_row(*pairs[0]):
        return None
    g1 = pairs[0][1].detach().double().sum(1)
    for _, g in pairs[1:]:
        if g is None or g.dim() != 2 or len(g) != len(g1) or bool(((g != 0).sum(1) > 1).any()):
            continue
        g2 = g.detach().double().sum(1)
        rows = (g2 != 0) & (g1 != 0)
        if int(rows.sum()) < 2:
            continue
        ratio = g2[rows] / g1[rows]
        gamma = -float(ratio.median())
        if 0 < gamma <= 1 + 1e-6 and float((ratio + gamma).abs().max()) <= 1e-4 * gamma:
            return gamma
    return None


def zero_sum_rows(g: torch.Tensor | None) -> bool:
    """Whether the loss's gradient on (..., C) outputs (C >= 3) sums to 0 over the last axis in every row: a loss
    of softmax(z) (cross-entropy with hard or soft targets, a distillation KL), which no regression loss gives."""
    if g is None or g.dim() < 2 or g.shape[-1] < 3 or not g.is_floating_point():
        return False
    g = g.detach().double()
    top = float(g.abs().max())
    tol = max(1e-4, 8 * torch.finfo(g.dtype if g.dtype != torch.float64 else torch.float32).eps)
    return top > 0 and float(g.sum(-1).abs().max()) <= tol * top
