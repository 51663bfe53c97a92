"""Pre-flight: what the loss function hands to torch's losses of log-probabilities. ``F.kl_div(input, target)``
(``nn.KLDivLoss``) and ``F.nll_loss`` (``nn.NLLLoss``) read their input as log-probabilities, which are never
positive; given probabilities (a distillation loss fed ``softmax(s / T)`` instead of ``log_softmax``) or raw
logits, the KL term goes negative and the loss has no floor (Hinton, Vinyals & Dean, "Distilling the knowledge in a
neural network", 2015, match softened distributions: the student's side must be log-probabilities for torch's
``kl_div``). ``F.gaussian_nll_loss`` (``nn.GaussianNLLLoss``) reads a variance that must be positive (Nix & Weigend
1994 make it so with an exponential; softplus is the usual choice): one made by a ReLU is exactly 0 wherever the
unit is off, torch clamps it to ``eps`` = 1e-6 and those examples' squared errors are multiplied by 500,000.
``F.ctc_loss`` reads log-probabilities, and frame counts as its ``input_lengths``: the labels' counts there make it
read only the first frames, with no blank. The calls are seen inside the user's own loss, however it is written,
with a :class:`~torch.overrides.TorchFunctionMode` over one evaluation of it."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.pair_targets import pair_target, pair_target_verdict
from trainwell.doctor.silent_broadcasts import SILENT_BROADCAST_LOSSES, input_and_target, widens
from trainwell.doctor.verdict import Verdict

NAME = "loss input"

#: of the targets, the share below 1 (counts of 0) from which a Poisson rate of at least 1 is named
LOW_COUNTS = 0.1

_LOG_PROBABILITY_LOSSES = {F.kl_div: "kl_div", F.nll_loss: "nll_loss"}
#: elementwise losses that broadcast an input and a target of different shapes (torch warns for some)
_ELEMENTWISE_LOSSES = {F.mse_loss: "mse_loss", F.l1_loss: "l1_loss", F.smooth_l1_loss: "smooth_l1_loss",
                       F.huber_loss: "huber_loss", **SILENT_BROADCAST_LOSSES}


def widening_warning(message: str) -> bool:
    """Whether torch's "Using a target size (torch.Size([...])) that is different to the input size" warning names
    shapes that :func:`widens`; True when the sizes cannot be read from it."""
    sizes = [tuple(int(d) for d in found.split(",") if d.strip()) for found in
             re.findall(r"torch\.Size\(\[([0-9, ]*)\]\)", message)]
    return len(sizes) != 2 or widens(*sizes)


class _LossCalls(TorchFunctionMode):
    """Records the input of every ``F.kl_div`` / ``F.nll_loss`` call and the variance of every
    ``F.gaussian_nll_loss`` call made while it is active."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, torch.Tensor]] = []
        self.variances: list[torch.Tensor] = []  # the var given to F.gaussian_nll_loss
        self.broadcasts: list[tuple[str, tuple, tuple]] = []  # an elementwise loss's input and target shapes
        # the (log_probs, input_lengths, target_lengths) given to F.ctc_loss
        self.ctc: list[tuple[torch.Tensor, object, object]] = []
        self.log_rates: list[tuple[torch.Tensor, torch.Tensor]] = []  # F.poisson_nll_loss(log_input=True)'s
        self.pair_targets: list[tuple[str, torch.Tensor]] = []  # the target of a pair loss (1 / -1)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        pair = pair_target(func, args, kwargs)
        if pair is not None:
            self.pair_targets.append(pair)
        name = _ELEMENTWISE_LOSSES.get(func)
        if name is not None:
            given = input_and_target(args, kwargs)
            if all(isinstance(t, torch.Tensor) for t in given) and widens(given[0].shape, given[1].shape):
                self.broadcasts.append((name, tuple(given[0].shape), tuple(given[1].shape)))
        if func is F.gaussian_nll_loss:
            var = args[2] if len(args) > 2 else (kwargs or {}).get("var")
            if isinstance(var, torch.Tensor):
                self.variances.append(var.detach())
        if func is F.ctc_loss:
            given, lengths = ctc_call_inputs(args, kwargs)
            if isinstance(given, torch.Tensor):
                self.ctc.append((given.detach(), lengths, ctc_target_lengths(args, kwargs)))
        if func is F.poisson_nll_loss:
            given = input_and_target(args, kwargs)
            log_input = args[2] if len(args) > 2 else (kwargs or {}).get("log_input", True)
            if log_input and all(isinstance(t, torch.Tensor) for t in given):
                self.log_rates.append((given[0].detach(), given[1].detach()))
        name = _LOG_PROBABILITY_LOSSES.get(func)
        if name is not None:
            given = args[0] if args else (kwargs or {}).get("input")
            if isinstance(given, torch.Tensor):
                self.seen.append((name, given.detach()))
        return func(*args, **(kwargs or {}))


def ctc_call_inputs(args: tuple, kwargs: dict | None) -> tuple:
    """A ``ctc_loss`` call's ``log_probs`` and ``input_lengths``, given by position or by name."""
    kwargs = kwargs or {}
    return (args[0] if args else kwargs.get("log_probs"),
            args[2] if len(args) > 2 else kwargs.get("input_lengths"))


def ctc_target_lengths(args: tuple, kwargs: dict | None):
    """A ``ctc_loss`` call's ``target_lengths``, given by position or by name."""
    return args[3] if len(args) > 3 else (kwargs or {}).get("target_lengths")


def ctc_lengths_verdict(given: torch.Tensor, input_lengths, target_lengths, check: str = NAME) -> Verdict | None:
    """A fail when ``F.ctc_loss``'s ``input_lengths`` equal its ``target_lengths`` on every example (of 2 or more,
    as tensors or lists) and some are shorter than the (T, B, C) input's T frames: the labels' counts given where
    the output's frame counts belong. The loss then reads only the first frames, in the one alignment with no
    blank (an infinite loss where a label repeats, zeroed by ``zero_infinity``). None otherwise. ``check``: the
    verdict's name (``loop: loss input`` under ``doctor.watch``)."""
    try:
        frames = torch.as_tensor(input_lengths).flatten().long().cpu()
        labels = torch.as_tensor(target_lengths).flatten().long().cpu()
    except (TypeError, ValueError, RuntimeError):
        return None
    if given.dim() != 3 or len(frames) < 2 or frames.shape != labels.shape or not bool((frames == labels).all()) \
            or not bool((frames < given.shape[0]).any()):
        return None
    return Verdict(check, "fail", f"F.ctc_loss's input_lengths equal its target_lengths on all {len(frames)} examples "
                   f"({int(frames.min())}..{int(frames.max())}) while its input has {given.shape[0]} frames",
                   "input_lengths: the frames of each example's output; target_lengths: its labels",
                   "input_lengths counts the output's time steps (usually T for every example, or each input's "
                   "length after the model's downsampling), not the labels: with as many frames as labels the loss "
                   "reads only the first frames, allows no blank, and cannot fit a repeated label")


def read_loss_inputs(loss_fn: Callable, out, y) -> Verdict | None:
    """A fail when the loss gives ``F.kl_div`` or ``F.nll_loss`` an input with positive values: probabilities or
    logits where log-probabilities belong; an elementwise regression loss (``F.mse_loss``, ``F.l1_loss``, Huber)
    given an input and a target that broadcast to a larger shape ((B, 1) against (B,): (B, B)); a pair loss
    (``F.cosine_embedding_loss``, ``F.margin_ranking_loss``) given targets other than 1 and -1 (0/1 labels: see
    :mod:`~trainwell.doctor.pair_targets`); for ``F.gaussian_nll_loss``, a variance with negative entries (a fail)
    or exact zeros (a warning); for ``F.ctc_loss``, anything but log-probabilities, or ``input_lengths`` equal to
    the ``target_lengths`` (:func:`ctc_lengths_verdict`). None when none is called, or every input is as it
    should be."""
    calls = _LossCalls()
    with torch.no_grad(), calls, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loss's own warnings (a broadcast) are the other checks' to report
        try:
            loss_fn(out, y)
        except ValueError:  # torch refuses a negative variance: read from what was recorded before it raised
            if not calls.variances:
                raise
    if calls.broadcasts:
        name, given, target = calls.broadcasts[0]
        shape = tuple(torch.broadcast_shapes(given, target))
        return Verdict(NAME, "fail", f"F.{name} is given an input of shape {given} and a target of shape {target}: "
                       f"it broadcasts them to {shape}", "input and target of one shape",
                       "every output is compared with every target: squeeze the output (out.squeeze(1)) or "
                       "unsqueeze the targets so that both have one shape")
    for loss, target in calls.pair_targets:
        verdict = pair_target_verdict(loss, target, NAME)
        if verdict is not None:
            return verdict
    variance = _variance_verdict(calls.variances)
    if variance is not None:
        return variance
    for given, lengths, labels in calls.ctc:
        verdict = ctc_input_verdict(given, lengths) or ctc_lengths_verdict(given, lengths, labels)
        if verdict is not None:
            return verdict
    for rates, counts in calls.log_rates:
        verdict = positive_log_rates_verdict(rates, counts)
        if verdict is not None:
            return verdict
    for name, given in calls.seen:
        if not given.is_floating_point() or given.numel() == 0 or not bool((given > 1e-6).any()):
            continue
        lo, hi = float(given.min()), float(given.max())
        kind = "probabilities" if lo >= 0 and hi <= 1 else "values that are not log-probabilities (logits?)"
        return Verdict(NAME, "fail", f"F.{name} is given {kind}: its input runs {lo:.3g}..{hi:.3g}",
                       "log-probabilities (all <= 0)",
                       f"{name} reads its input as log-probabilities: pass F.log_softmax(scores, dim=-1) (for "
                       f"distillation, F.log_softmax(student / T) against F.softmax(teacher / T)); with probabilities "
                       f"the loss goes negative and has no floor" if name == "kl_div" else
                       f"{name} reads its input as log-probabilities: pass F.log_softmax(scores, dim=1), or give the "
                       f"raw scores to F.cross_entropy, which applies it")
    return None


def _variance_verdict(variances: list[torch.Tensor]) -> Verdict | None:
    """A fail when a variance given to ``F.gaussian_nll_loss`` has negative entries (torch raises), a warning when
    1% or more of its entries are exactly 0 (a ReLU's; torch clamps them to eps)."""
    for var in variances:
        if not var.is_floating_point() or var.numel() == 0:
            continue
        negative, zero = float((var < 0).double().mean()), float((var == 0).double().mean())
        advice = ("make the variance positive with a smooth map: F.softplus(v) + 1e-6, or exp(log_var) (predict the "
                  "log-variance)")
        if negative > 0:
            return Verdict(NAME, "fail", f"F.gaussian_nll_loss is given a variance with negative entries "
                           f"({negative:.0%} of them; torch raises 'var has negative entry')", "a positive variance",
                           advice)
        if zero >= 0.01:
            return Verdict(NAME, "warn", f"F.gaussian_nll_loss is given a variance that is exactly 0 on {zero:.0%} "
                           "of the entries (a ReLU's?)", "a positive variance", advice + ": torch clamps a 0 "
                           "variance to eps = 1e-6, which multiplies those examples' squared errors by 500,000")
    return None


def reads_log_probabilities(loss_fn: Callable, out, y) -> bool:
    """Whether the loss gives its input to ``F.ctc_loss`` (``nn.CTCLoss``), which reads log-probabilities over
    the last axis and has no lowest value on free numbers; False when the loss cannot be run on ``out``."""
    calls = _LossCalls()
    try:
        with torch.no_grad(), calls, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_fn(out, y)
    except Exception:  # noqa: BLE001 - a loss that does not run on these outputs reads nothing here
        return bool(calls.ctc)
    return bool(calls.ctc)


def positive_log_rates_verdict(rates: torch.Tensor, counts: torch.Tensor) -> Verdict | None:
    """A fail when ``F.poisson_nll_loss(log_input=True)`` is given log-rates that are all >= 0 (a Softplus or ReLU
    ending the model: the rate exp(out) is never below 1) while a tenth or more of the targets are below 1."""
    if not rates.is_floating_point() or rates.numel() < 8 or float(rates.min()) < 0:
        low = None
    else:
        low = float((counts.double() < 1).double().mean())
    if low is None or low < LOW_COUNTS:
        return None
    return Verdict(NAME, "fail", f"F.poisson_nll_loss(log_input=True) is given log-rates that are all >= 0 (lowest "
                   f"{float(rates.min()):.3g}): the rate exp(out) is never below 1, while {low:.0%} of the targets "
                   f"are below 1", "log-rates of either sign", "with log_input=True the model outputs log-rates: "
                   "remove the Softplus/ReLU/exp that ends it, or keep the positive output as the rate and pass "
                   "log_input=False")


def _read_positions(given: torch.Tensor, input_lengths) -> torch.Tensor:
    """The (positions, classes) rows of ``ctc_loss``'s input that its ``input_lengths`` cover: the frames after an
    example's length are padding the loss never reads (zeros from ``pad_sequence``, say). All rows when the
    lengths cannot be read against the input's (T, N, C) or (T, C) shape."""
    rows = given.reshape(-1, given.shape[-1])
    try:
        lengths = torch.as_tensor(input_lengths, device="cpu").long().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        return rows
    if given.dim() == 3 and len(lengths) == given.shape[1]:
        covered = torch.arange(given.shape[0])[:, None] < lengths[None, :]
    elif given.dim() == 2 and len(lengths) == 1:
        covered = torch.arange(given.shape[0]) < lengths
    else:
        return rows
    covered = covered.reshape(-1).to(rows.device)
    return rows[covered] if bool(covered.any()) else rows


def ctc_input_verdict(given: torch.Tensor, input_lengths=None, check: str = NAME) -> Verdict | None:
    """A fail when ``F.ctc_loss`` is given anything but log-probabilities over its last (class) axis: all <= 0
    with logsumexp 0 (to 1e-3, or to the rounding of a 16-bit input) at every position its ``input_lengths``
    cover. Values in [0, 1] that sum to 1 per position are probabilities (a softmax in place of log_softmax);
    free values are raw scores. torch's CTC backward assumes normalized log-probabilities, so its gradient is
    then wrong too. None when the input is as it should be. ``check``: the verdict's name (``loop: loss input``
    under ``doctor.watch``)."""
    if not given.is_floating_point() or given.numel() == 0 or given.shape[-1] < 2:
        return None
    g = _read_positions(given.detach(), input_lengths).double()
    tolerance = max(1e-3, 16 * torch.finfo(given.dtype).eps)  # log-probabilities rounded to bfloat16 or float16
    if bool((g <= 1e-6).all()) and bool((g.logsumexp(-1).abs() < tolerance).all()):
        return None
    lo, hi = float(g.min()), float(g.max())
    if lo >= 0 and hi <= 1 and bool(((g.sum(-1) - 1).abs() < 1e-3).all()):
        what = "probabilities (each position's values sum to 1)"
    elif hi <= 1e-6:
        what = "values <= 0 whose exponentials do not sum to 1 per position"
    else:
        spread = g.logsumexp(-1)
        what = (f"values that are not log-probabilities (raw scores? their logsumexp over the classes runs "
                f"{float(spread.min()):.3g}..{float(spread.max()):.3g}, not 0)")
    return Verdict(check, "fail", f"F.ctc_loss is given {what}: its input runs {lo:.3g}..{hi:.3g}",
                   "log-probabilities over the last axis (all <= 0, logsumexp 0 at every position)",
                   "ctc_loss reads log-probabilities: end the model with F.log_softmax(scores, dim=-1) (not softmax, "
                   "not the raw scores); its backward assumes them, so its gradients are wrong too" +
                   (" (see the gradient check)" if check == NAME else ""))
