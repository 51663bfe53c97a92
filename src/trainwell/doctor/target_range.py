"""Pre-flight: targets the loss can never reach. A class-index loss that ignores a real class
(``nn.CrossEntropyLoss(ignore_index=0)`` where 0 is a class: those examples never train), and regression targets
outside the range an activation after the last layer leaves (ratings 1..5 through a Sigmoid: the outputs stop
at 1, so the loss cannot fall below the gap)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.loss_kinds import loss_kind, reads_class_scores, uniform_scores
from trainwell.doctor.multi_hot import ADVICE, multi_hot_rows
from trainwell.doctor.output_layer import RANGES, last_activation
from trainwell.doctor.verdict import Verdict

NAME = "targets"

_RANGES = {cls.__name__: bounds for cls, bounds in RANGES.items()}  # by the class name last_activation gives


def ignored_class(loss_fn: Callable, out, y: torch.Tensor) -> Verdict | None:
    """A fail when the loss ignores one of the model's classes that some targets hold: its ``ignore_index``
    (torch's loss modules), or, for a function (``F.cross_entropy(o, t, ignore_index=0)`` in a closure), a class
    whose examples alone give the loss no value (NaN: a mean over no examples, or exactly 0) on uniform logits."""
    scores = O.logits(out)
    # one class per example (B,): a sequence's (B, T) targets ignore a padding id by design
    if scores is None or scores.dim() != 2 or y.dim() != 1 or y.is_floating_point() or len(y) != len(scores):
        return None
    c = scores.shape[1]
    ignore = getattr(loss_fn, "ignore_index", None)
    if ignore is None:
        ignore = _silent_class(loss_fn, out, scores, y)
    if ignore is None:
        return None
    share = float((y == ignore).float().mean())
    if not 0 <= ignore < c or share == 0:
        return None
    return Verdict(NAME, "fail", f"{share:.0%} of the targets equal ignore_index={ignore}, one of the model's {c} "
                   "classes", "ignore_index outside [0, C) (torch's default -100)",
                   f"the loss skips every example of class {ignore}: it never learns that class; use ignore_index "
                   f"only for a padding label outside 0..{c - 1}")


def _silent_class(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> int | None:
    """The first class among the targets (at most 64 read) whose examples alone give ``loss_fn`` NaN or exactly 0
    on uniform outputs (zero logits; -ln C for NLL, which reads log-probabilities), where a cross-entropy gives
    ln C; None if none does or the loss cannot be read so."""
    uniform = O.replace_logits(out, uniform_scores(loss_fn, scores))
    if not reads_class_scores(loss_fn, out, y):  # ln C on uniform logits: only such a loss is probed per class
        return None
    for cls in torch.unique(y)[:64].tolist():
        try:
            with torch.no_grad():
                value = loss_fn(uniform, torch.full_like(y, cls))
        except Exception:  # noqa: BLE001 - a loss that cannot be probed so is simply not read
            return None
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            return None
        v = float(value)
        if v != v or v == 0.0:
            return int(cls)
    return None


def unreachable_targets(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> \
        Verdict | None:
    """A fail when a regression loss's targets lie outside the range the last activation leaves the outputs."""
    if loss_kind(loss_fn) not in ("mse", "l1", "smooth_l1", "huber") or not y.is_floating_point() or not len(y):
        return None
    found = last_activation(model, x)
    if found is None or found[1] not in _RANGES:
        return None
    low, high = _RANGES[found[1]]
    lo, hi = float(y.min()), float(y.max())
    if low <= lo and hi <= high:
        return None
    return Verdict(NAME, "fail", f"targets run {lo:.3g}..{hi:.3g}, but the outputs pass through {found[1]} "
                   f"('{found[0]}') last: in [{low:g}, {high:g}]", "targets inside the outputs' range",
                   f"the model cannot output the targets, so the loss stays above the gap whatever it learns: drop "
                   f"the {found[1]} after the last layer, or rescale the targets into [{low:g}, {high:g}]")


def one_label_left(y: torch.Tensor, classes: int | None) -> tuple[str, str] | None:
    """When integer targets hold labels a class-index loss ignores (negative ones, torch's ignore_index -100; 255,
    segmentation's void label, under fewer than 255 classes) and every other target is one class: (what was
    seen, the advice); None otherwise. ``classes``: the outputs' width, None when unknown (a loss that reads one
    class only gives no softmax reading to take it from). A 0/255 binary mask (a PNG's foreground) under
    ``ignore_index=255`` is one: the loss reads the background only, which a constant output fits. Masks whose
    ignored pixels are only whole rows and columns (a crop's padding, a void frame) are not: that batch's images
    hold background alone, and their foreground is not on the ignored label."""
    if y.is_floating_point() or y.is_complex() or y.numel() < 2:
        return None
    flat = y.reshape(-1)
    ignored = (flat < 0) | ((flat == 255) & (classes is None or classes < 255))
    kept = flat[~ignored]
    if not bool(ignored.any()) or kept.numel() == 0 or not bool((kept == kept[0]).all()) or \
            (classes is not None and int(kept[0]) >= classes) or _padding_only(ignored.reshape(y.shape)):
        return None
    label = int(flat[ignored].mode().values)
    seen = (f"every target the loss reads is {int(kept[0])}; the other {float(ignored.double().mean()):.0%} are "
            f"{label}, which it ignores")
    advice = "the loss trains one class, which a constant output fits: " + (
        "a 0/255 mask (a PNG's foreground) has its foreground ignored under ignore_index=255: map it to 0/1 "
        "(mask // 255)" if label == 255 else "are the other classes stored under the ignored label?")
    return seen, advice


def _padding_only(ignored: torch.Tensor) -> bool:
    """Whether the ignored pixels of (N, ..., H, W) masks are, in every mask, whole rows and whole columns only
    (a crop padded with the void label, a void frame), not shapes inside the image (a foreground)."""
    if ignored.dim() < 3:
        return False
    rows, cols = ignored.all(-1, keepdim=True), ignored.all(-2, keepdim=True)
    return bool(((rows | cols) == ignored).all())


def ignored_all_but_one(y: torch.Tensor, out) -> Verdict | None:
    """``doctor.check``'s :func:`one_label_left` on the batch, the classes read from the outputs' dimension 1."""
    scores = O.logits(out)
    if scores is None or scores.dim() < 2:
        return None
    found = one_label_left(y, scores.shape[1])
    return None if found is None else Verdict(NAME, "warn", found[0], "targets of two classes or more", found[1])


#: losses whose targets (+1 / -1) say how the items of a pair relate, not what the model should output
_PAIR_LOSSES = (nn.MarginRankingLoss, nn.HingeEmbeddingLoss, nn.CosineEmbeddingLoss)


def constant_targets(y: torch.Tensor, loss_fn: Callable | None = None, out=None) -> Verdict | None:
    """A warning when every target of the batch holds one value (all 1: a recommender's implicit feedback with
    no negative examples sampled) and a constant output fits them (the loss near 0 for outputs all -30, 0 or 30):
    then no check can see what the inputs do. A pair loss's +1 (which item of each pair ranks first) is one value
    by construction, and a constant output does not fit it."""
    if y.numel() < 2 or not bool((y == y.reshape(-1)[0]).all()) or isinstance(loss_fn, _PAIR_LOSSES):
        return None
    if loss_fn is not None and out is not None and (not _constant_fits(loss_fn, out, y) or
                                                    not _reads_targets(loss_fn, out, y)):
        return None
    value = y.reshape(-1)[0].item()
    return Verdict(NAME, "warn", f"all {len(y)} targets are {value:g}" if isinstance(value, float) else
                   f"all {len(y)} targets are {value}", "targets that differ",
                   "a constant output fits them perfectly, so the loss says nothing about the inputs: are the "
                   "negative examples (or the other classes) missing, e.g. never sampled, or is the batch cut from "
                   "data sorted by label (shuffle before taking it)?")


#: the checks a batch of one target cannot inform: the first loss is one class's, and a constant fits the rest
CONSTANT_BOUND = ("initial loss", "overfit a tiny subset", "input-independent baseline")


def defer_to_constant_targets(verdicts: list) -> list:
    """When every target of the batch is one value that a constant output fits, the initial loss, overfit and
    baseline verdicts that warn or fail follow from it: their advice names the targets verdict first."""
    found = next((v for v in verdicts if v.check == NAME and v.status == "warn" and
                  str(v.value).startswith("all ") and " targets are " in str(v.value)), None)
    if found is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{NAME}' first: {found.value}, which a constant "
                    "output fits; the checks cannot see what the inputs do")
            if v.check in CONSTANT_BOUND and v.status in ("fail", "warn") else v for v in verdicts]


def _reads_targets(loss_fn: Callable, out, y: torch.Tensor) -> bool:
    """Whether the loss on the model's outputs ``out`` changes when the one-valued targets ``y`` change (to 0, or to
    1 where they are 0); True when that cannot be read. A loss of the outputs alone (a BPR loss on the positive and
    negative scores, given placeholder targets) does not: its targets say nothing about the data."""
    other = torch.ones_like(y) if bool((y == 0).all()) else torch.zeros_like(y)
    try:
        with torch.no_grad():
            given, changed = loss_fn(out, y), loss_fn(out, other)
    except Exception:  # noqa: BLE001 - a loss that does not take other targets reads them
        return True
    return not (isinstance(given, torch.Tensor) and isinstance(changed, torch.Tensor) and
                given.shape == changed.shape and torch.equal(given, changed))


def _constant_fits(loss_fn: Callable, out, y: torch.Tensor) -> bool:
    """Whether outputs that are one constant (every floating-point tensor of ``out`` all -30, 0 or 30, or, for
    integer targets of one class k, scores of 30 for class k and -30 for the others along dim 1: the label prior
    a bias learns) bring the loss near 0; True when the loss cannot be read so (the warning then stands)."""
    def constant(value, c):
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point():
                return value
            if c is None:  # the one class every target holds, scored above the others
                k = int(y.reshape(-1)[0])
                if value.dim() < 2 or not 0 <= k < value.shape[1]:
                    return torch.zeros_like(value)
                return torch.full_like(value, -30.0).index_fill_(1, torch.tensor([k], device=value.device), 30.0)
            return torch.full_like(value, c)
        if isinstance(value, tuple | list):
            return type(value)(constant(v, c) for v in value)
        if isinstance(value, dict):
            return {k: constant(v, c) for k, v in value.items()}
        return value

    constants = (-30.0, 0.0, 30.0) + ((None,) if not y.is_floating_point() and not y.is_complex() else ())
    try:
        with torch.no_grad():
            losses = [float(loss_fn(constant(out, c), y).mean()) for c in constants]
    except Exception:  # noqa: BLE001 - a structure the loss does not take back: the reading stands
        return True
    return min(losses) < 1e-3


def multi_hot_targets(y: torch.Tensor, loss_fn: Callable, out) -> Verdict | None:
    """A fail when cross-entropy (a softmax over the classes) is given multi-hot float targets: rows of 0/1 that
    mark two or more classes (:mod:`trainwell.doctor.multi_hot`)."""
    scores = O.logits(out)
    if scores is None or scores.dim() != 2 or loss_kind(loss_fn) != "cross_entropy":
        return None
    hot = multi_hot_rows(y, scores.shape[1])
    if hot is None:
        return None
    return Verdict(NAME, "fail", f"multi-hot targets under cross-entropy: {hot[0]} of {hot[1]} rows mark two or "
                   "more classes", "one class per row (or a probability distribution)", ADVICE)
