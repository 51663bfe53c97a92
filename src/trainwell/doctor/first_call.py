"""Whether the user's own forward and loss run on the batch at all, before any check reads them: a loss that
raises on the first batch (class targets of shape (B, 1), int32 labels, float64 inputs to a float32 model) is
the loop's first bug, and the checks that could not run because of it must not read as a pass."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import loss_kind
from trainwell.doctor.verdict import Verdict
from trainwell.train.input_checks import check_input_dtype, integer_inputs_hint
from trainwell.train.losses import CLASS_INDEX_LOSSES, check_labels, class_scores

NAME = "forward and loss run"


def runs_on_data(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> \
        tuple[Verdict | None, object]:
    """(None, the model's output) when ``loss_fn(model(x), y)`` returns a floating-point loss; else (a fail quoting
    torch's error and naming the conversion to make — the dtype of the inputs, the shape or dtype of the targets —,
    the output or None)."""
    try:
        out = call(model, x)
    except Exception as e:  # noqa: BLE001 - the user's forward: whatever it raises is the verdict
        return _fail("the model's forward", e, _input_hint(model, x, e)), None
    try:
        loss = loss_fn(out, y)
    except Exception as e:  # noqa: BLE001 - the user's loss, likewise
        return _fail("the loss", e, _target_hint(out, y, loss_fn)), out
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point():
        return Verdict(NAME, "fail", f"loss_fn returned a {type(loss).__name__}, not a floating-point tensor",
                       "loss_fn(model(x), y) returns a loss tensor", "return the loss as a tensor (not .item())"), out
    return None, out


def whole_input_only(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                     used: int) -> tuple[Verdict | None, object]:
    """When the forward fails on the first ``used`` examples: (an info verdict, the output) if it runs on all of
    ``x`` (a model that takes the whole input at once: a graph network over all its nodes), else (None, None)."""
    if len(x) <= used:
        return None, None
    crash, out = runs_on_data(model, x, y, loss_fn)
    if crash is not None:
        return None, None
    return Verdict(NAME, "info", f"the model runs on the {len(x)} examples given, not on their first {used}: it takes "
                   "the whole input at once (a graph network over all its nodes?)", "-",
                   "the checks run on the whole input; those that take a subset of the examples cannot run on this "
                   "model and are skipped"), out


def _fail(where: str, error: Exception, hint: str | None) -> Verdict:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return Verdict(NAME, "fail", f"{where} raised {type(error).__name__}: {text[:200]}",
                   "loss_fn(model(x), y) returns a loss", (hint or "your loop raises this on its first batch: fix "
                   "it before training") + " (the checks below could not look at the model)")


def _input_hint(model: nn.Module, x: torch.Tensor | Inputs, error: Exception) -> str | None:
    if not isinstance(x, torch.Tensor):
        return None
    if isinstance(error, RuntimeError):
        hint = integer_inputs_hint(x, error, "the")
        if hint is not None:
            return hint
    try:
        check_input_dtype(x, next((p for p in model.parameters() if p.is_floating_point()), None), "the")
    except TypeError as e:
        return str(e)
    return None


def _target_hint(out, y: torch.Tensor, loss_fn: Callable) -> str | None:
    floats = _float_targets_hint(out, y, loss_fn)
    if floats is not None:
        return floats
    try:
        scores = class_scores(out)
    except TypeError:
        return None
    if loss_kind(loss_fn) not in ("cross_entropy", "nll", "hinge"):  # losses of class-index targets
        return _squeeze_hint(out, scores, y, loss_fn)
    if y.dim() == scores.dim() and y.dim() > 2 and y.shape[1] == 1:  # (B, 1, H, W) masks for (B, C, H, W) scores
        return f"targets of shape {tuple(y.shape)}: class-index masks are (B, H, W): y.squeeze(1)"
    if scores.dim() == 3 and not y.is_floating_point() and y.shape == scores.shape[:2]:  # (B, T, V) and (B, T)
        v = scores.shape[2]
        return (f"scores of shape {tuple(scores.shape)} (B, T, classes) with targets {tuple(y.shape)}: the loss "
                f"reads the classes on dim 1; pass out.transpose(1, 2), or out.reshape(-1, {v}) with y.reshape(-1)")
    if y.is_floating_point():
        whole = bool((y == y.round()).all())
        return ("class-index targets are floating point: y.long()" if whole else None) if \
            y.shape == scores.shape[:1] + scores.shape[2:] else None
    try:  # the label rules of every class-index loss (a module stands in for a function loss_kind recognised)
        check_labels(scores, y, loss_fn if isinstance(loss_fn, CLASS_INDEX_LOSSES) else nn.CrossEntropyLoss())
    except ValueError as e:
        return str(e)
    if y.dtype != torch.int64:
        return f"class-index targets are {str(y.dtype).removeprefix('torch.')}; torch's loss takes int64: y.long()"
    return None


def _squeeze_hint(out, scores: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> str | None:
    """Targets and outputs that differ by a trailing dimension of 1 ((B, 1) labels for (B,) scores of a pair
    model, or the reverse), for a loss that runs once it is squeezed: name the squeeze."""
    if not isinstance(y, torch.Tensor) or not isinstance(scores, torch.Tensor) or scores is not out:
        return None
    if tuple(y.shape) == tuple(scores.shape) + (1,):
        fixed, fix = (out, y.squeeze(-1)), "y.squeeze(-1)"
    elif tuple(scores.shape) == tuple(y.shape) + (1,):
        fixed, fix = (out.squeeze(-1), y), "out.squeeze(-1)"
    else:
        return None
    try:
        with torch.no_grad():
            loss_fn(*fixed)
    except Exception:  # noqa: BLE001 - the squeeze does not fix it: no hint
        return None
    return (f"targets of shape {tuple(y.shape)} for outputs of shape {tuple(scores.shape)}: give them the same "
            f"shape, {fix}")


def _float_targets_hint(out, y: torch.Tensor, loss_fn: Callable) -> str | None:
    """Integer (or boolean) targets for a loss that runs once they are floating point (BCE with logits, a
    regression loss): name the conversion. A class-index loss is not asked (float targets mean probabilities)."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or \
            loss_kind(loss_fn) in ("cross_entropy", "nll", "hinge"):
        return None
    try:
        with torch.no_grad():
            loss_fn(out, y.float())
    except Exception:  # noqa: BLE001 - the conversion does not fix it: no hint
        return None
    dtype = str(y.dtype).removeprefix("torch.")
    labels = " (0./1. per label)" if loss_kind(loss_fn) == "bce_logits" else ""
    return f"the loss takes floating-point targets and y is {dtype}: pass float targets{labels}, y.float()"
