"""The ``loop: loss input`` verdict: what a hand-written loop hands to a loss that reads its input in one form.

``F.ctc_loss`` (``nn.CTCLoss``) reads log-probabilities over the classes (Graves et al. 2006); torch's CTC backward
assumes them. On the first steps a :class:`~torch.overrides.TorchFunctionMode` sees the input the loop hands to
``F.ctc_loss``, however its loss is written: anything whose logsumexp over the classes is not 0 at every position
the input lengths cover (raw scores, a softmax's probabilities) is named (a compiled model runs those steps
uncompiled). The loss's graph says it too: a CTC node whose input is a softmax's output (past reshapes and
transposes) was given probabilities.

``nn.PoissonNLLLoss(log_input=True)`` (the default, as ``F.poisson_nll_loss``) reads the outputs as log-rates: its
loss is exp(out) - y out, whose gradient exp(out) - y each observed step's output gradient is matched against.
Outputs that never go below 0 (a Softplus, ReLU or exp at the end, meant as the rate itself) give a rate exp(out)
that never goes below 1: counts of 0 can never be fitted, and the loss settles far above its floor.

A squared-error loss (recognised by its gradient c (out - y)) on outputs that never go below 0 (a ReLU, Softplus or
Sigmoid ending a regressor or a denoiser) while a tenth or more of the targets are below 0 (standardized targets,
images in [-1, 1]) can never fit those targets: the outputs stay at 0 where they are wanted negative.

A soft Dice (or IoU) loss reads probabilities; on raw scores its denominator can reach 0 and its value leaves
[0, 1]. The loss is recognised by the gradient it sends to the outputs (:mod:`~trainwell.doctor.dice_form`), and
outputs outside [0, 1] on the steps so read are named."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.batch_standardized_targets import StandardizedTargetReader
from trainwell.doctor.capped_outputs import capped_outputs_verdict
from trainwell.doctor.dice_form import read_dice
from trainwell.doctor.dice_targets import read_dice_without_targets
from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.fitting import _RESHAPES
from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.large_smoothing import READS as SMOOTHING_READS
from trainwell.doctor.large_smoothing import large_smoothing, read_smoothing
from trainwell.doctor.loop_verdicts import grad_scaler_unscale
from trainwell.doctor.loss_inputs import (
    LOW_COUNTS,
    ctc_call_inputs,
    ctc_input_verdict,
    ctc_lengths_verdict,
    ctc_target_lengths,
)
from trainwell.doctor.pair_targets import PairTargetReader
from trainwell.doctor.pushed_pairs import READS, pushed_pairs_verdict, read_pushed_pairs
from trainwell.doctor.registration import graph_nodes
from trainwell.doctor.silent_broadcasts import ResidualSigns, SilentBroadcastReader
from trainwell.doctor.training_loss_call import TrainingLossCall
from trainwell.doctor.verdict import Verdict

NAME = "loop: loss input"
#: the share of targets below 0 that outputs cut at 0 leave unreachable
NEGATIVE_TARGETS = 0.1
#: targets of both signs reach below 0 at least this share of how far they reach above it (5th/95th percentiles)
REACH = 1 / 3
#: how the verdict on outputs cut at 0 begins
CUT_OUTPUTS = "a squared error is given outputs that never went below 0"
#: what outputs cut at 0 explain: rows cut to the same 0, and a model cut to 0 everywhere that gets no gradient
CUT_EXPLAINS = ("loop: inputs reach the outputs", "loop: every trainable parameter learns", "monitor: dead ReLUs")


class _CtcCall(TorchFunctionMode):
    """Reads the first input given to ``F.ctc_loss`` (or ``torch.ctc_loss``) while active."""

    def __init__(self):
        super().__init__()
        self.read = False
        self.verdict: Verdict | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        if not self.read and func in (F.ctc_loss, torch.ctc_loss):
            given, lengths = ctc_call_inputs(args, kwargs)
            if isinstance(given, torch.Tensor):
                self.read = True
                with torch.no_grad():
                    self.verdict = ctc_input_verdict(given, lengths, NAME) or \
                        ctc_lengths_verdict(given, lengths, ctc_target_lengths(args, kwargs), NAME)
        return func(*args, **(kwargs or {}))


class CtcInputReader(FirstStepsReader):
    """What a watched loop gives ``F.ctc_loss``, read on its first steps (:data:`~trainwell.doctor.first_steps.TRIES`
    at most) until one call is seen; ``verdict`` holds the fail, if any."""

    def __init__(self):
        super().__init__()
        self.verdict: Verdict | None = None
        self._read = False

    def _new_mode(self) -> _CtcCall:
        return _CtcCall()

    def _done(self) -> bool:
        return self._read

    def _keep(self, mode: _CtcCall) -> None:
        self._read, self.verdict = mode.read, mode.verdict


def ctc_on_softmax(loss: torch.Tensor) -> bool:
    """Whether ``loss``'s graph has an ``F.ctc_loss`` whose input is a softmax's output (past reshapes)."""
    fn = getattr(loss, "grad_fn", None)
    if fn is None:
        return False
    for node in graph_nodes([fn], limit=20_000):
        if type(node).__name__.startswith("CtcLossBackward"):
            given = node.next_functions[0][0]
            while given is not None and type(given).__name__.startswith(_RESHAPES):
                given = given.next_functions[0][0]
            return given is not None and type(given).__name__.startswith("SoftmaxBackward")
    return False


def read_log_rates(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor) -> dict | None:
    """On an observed step: when the gradient the loss sent to the outputs ``z`` is c (exp(z) - y) for a c > 0 (to
    1e-3; a Poisson NLL on log-rates, mean or sum), the outputs' minimum and the targets' share below 1; else
    None."""
    if not (z.is_floating_point() and y.is_floating_point()) or z.numel() != y.numel() or z.numel() < 8:
        return None
    zd, gd, yd = z.detach().double().flatten(), g.detach().double().flatten(), y.detach().double().flatten().cpu()
    zd, gd = zd.cpu(), gd.cpu()
    if not bool(torch.isfinite(zd).all()) or float(zd.max()) > 50:
        return None
    r = zd.exp() - yd
    rr = float((r * r).sum())
    if rr <= 0:
        return None
    c = float((gd * r).sum()) / rr
    if c <= 0 or float((gd - c * r).norm()) > 1e-3 * float(gd.norm()):
        return None
    return {"lowest": float(zd.min()), "low_targets": float((yd < 1).double().mean()), "mean_target": float(yd.mean())}


def read_cut_outputs(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor) -> dict | None:
    """On an observed step: when the gradient the loss sent to the outputs ``z`` is c (z - y) for a c > 0 (to 1e-3;
    a squared error, mean or sum), the outputs' minimum, the targets' share below 0, and how far they reach below 0
    against above it (their 5th percentile's depth over their 95th percentile); else None."""
    if not (z.is_floating_point() and y.is_floating_point()) or z.numel() != y.numel() or z.numel() < 8:
        return None
    zd, gd = z.detach().double().flatten().cpu(), g.detach().double().flatten().cpu()
    r = zd - y.detach().double().flatten().cpu()
    rr = float((r * r).sum())
    if not math.isfinite(rr) or rr <= 0:
        return None
    c = float((gd * r).sum()) / rr
    if c <= 0 or float((gd - c * r).norm()) > 1e-3 * float(gd.norm()):
        return None
    yd = y.detach().double().flatten().cpu()
    low, high = float(yd.quantile(0.05)), float(yd.quantile(0.95))
    return {"lowest": float(zd.min()), "negative_targets": float((yd < 0).double().mean()),
            "reach": -low / high if high > 0 else math.inf, "highest": float(zd.max()),
            "targets_above_one": float((yd > 1).double().mean()), "high_target": high}


class LossInputReads:
    """What a watched loop hands its loss, read on its steps: the ``F.ctc_loss`` input (:class:`CtcInputReader`),
    a pair loss's targets (:class:`~trainwell.doctor.pair_targets.PairTargetReader`) and a loss broadcasting its
    input against its target silently (:mod:`~trainwell.doctor.silent_broadcasts`), whose modes :meth:`start`
    and :meth:`finish` enter and leave around each step's loss, the first loss's graph,
    and each observed step's outputs and their gradient against the targets (a Poisson NLL on log-rates, a soft
    Dice or IoU loss, a metric-learning loss's pairs)."""

    def __init__(self):
        self.ctc = CtcInputReader()
        self.pairs = PairTargetReader()  # the targets given to a pair loss, read on the first steps
        self.broadcast = SilentBroadcastReader()  # a Gaussian or Poisson NLL broadcasting (B, 1) against (B,)
        self.signs = ResidualSigns()  # a hand-written regression loss broadcasting them
        self.training_call = TrainingLossCall()  # its class-index call's ignore_index and reduction
        self.standardized = StandardizedTargetReader()  # a regression loss's targets, per batch
        self.ctc_softmax = False  # the first loss's F.ctc_loss reads a softmax's output
        self.rates: list[dict] = []  # observed steps read as a Poisson NLL on log-rates
        self.squared: list[dict] = []  # observed steps read as a squared error
        self.overlaps: list[dict] = []  # observed steps read as a soft Dice or IoU loss
        self.pushes: list[dict] = []  # observed steps read as a loss of the embeddings' pairwise distances
        self.push_tries = 0
        self.overlap_tries = 0
        self.smoothing: list[tuple[float, int]] = []  # (epsilon, classes) per observed step read

    def start(self) -> None:
        self.broadcast.start()
        self.pairs.start()
        self.ctc.start()
        self.training_call.start()
        self.standardized.start()

    @property
    def broadcast_found(self) -> str | None:
        """A loss that broadcast (B, 1) outputs against (B,) targets without torch's warning, described."""
        return self.broadcast.found or self.signs.found

    @property
    def active(self) -> bool:
        """Whether one of the modes is entered."""
        return self.pairs.active or self.ctc.active or self.broadcast.active or self.training_call.active or \
            self.standardized.active

    def finish(self) -> None:
        """Leave the modes, the last entered first."""
        self.standardized.finish()
        self.training_call.finish()
        self.ctc.finish()
        self.pairs.finish()
        self.broadcast.finish()

    def first_loss(self, loss: torch.Tensor) -> None:
        self.ctc_softmax = ctc_on_softmax(loss)

    def observed(self, probe, scored: tuple | None, loss, y) -> None:
        """After an observed step (``scored``: its outputs and their gradient) whose targets ``y`` are a tensor
        (with none given, only a soft Dice or IoU loss is read, its targets read back from its gradient)."""
        if scored is None or not isinstance(y, torch.Tensor | None):
            return
        if y is None:
            self._overlap(probe, scored, loss, None)
            return
        self.signs.observe(*scored, y)
        if len(self.smoothing) < SMOOTHING_READS:
            read = read_smoothing(*scored, y)  # a label-smoothed cross-entropy, with the labels given
            if read is not None:
                self.smoothing.append((read, scored[0].shape[-1]))
        if len(self.pushes) < READS and self.push_tries < 4 * READS:
            self.push_tries += 1
            read = read_pushed_pairs(*scored, y)  # a metric-learning loss, by its output gradient
            if read is not None:
                self.pushes.append(read)
        if len(self.rates) < 64:
            read = read_log_rates(*scored, y)  # a Poisson NLL on log-rates, by its output gradient
            if read is not None:
                self.rates.append(read)
            read = read_cut_outputs(*scored, y)  # a squared error, by its output gradient
            if read is not None:
                self.squared.append(read)
        self._overlap(probe, scored, loss, y)

    def _overlap(self, probe, scored: tuple, loss, y: torch.Tensor | None) -> None:
        """A soft Dice or IoU loss read on the first 8 observed steps of one backward pass (``y`` None: against the
        targets its gradient gives, :mod:`~trainwell.doctor.dice_targets`)."""
        step = probe.steps[-1] if probe.steps else None
        if self.overlap_tries < 8 and step is not None and step["backwards"] == 1:
            self.overlap_tries += 1
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            read = read_dice(*scored, y, value, grad_scaler_unscale(step)) if y is not None else \
                read_dice_without_targets(*scored, value, grad_scaler_unscale(step))
            if read is not None:
                self.overlaps.append(read)

    def smoothing_verdict(self) -> Verdict | None:
        """The ``loop: label smoothing`` warning on an epsilon of 0.5 or more
        (:mod:`~trainwell.doctor.large_smoothing`)."""
        return large_smoothing([e for e, _ in self.smoothing], self.smoothing[0][1] if self.smoothing else None)

    def pairs_verdict(self) -> Verdict | None:
        """The ``loop: metric-learning pairs`` verdict (:mod:`~trainwell.doctor.pushed_pairs`), if any."""
        return pushed_pairs_verdict(self.pushes)

    def verdict(self, losses: list[float]) -> Verdict | None:
        """The ``loop: loss input`` fail, if any (``losses``: the run's per-step losses)."""
        return loss_input_verdict(self.ctc_softmax, self.rates, self.ctc.verdict) or \
            overlap_verdict(self.overlaps, losses) or self.pairs.verdict() or cut_outputs_verdict(self.squared) or \
            capped_outputs_verdict(self.squared)


def overlap_verdict(reads: list[dict], losses: list[float]) -> Verdict | None:
    """A fail when two or more observed steps read as a soft Dice (or IoU) loss and its outputs left [0, 1] on one
    of them: raw scores where the loss reads probabilities; else None. The losses' range is quoted when they left
    the loss's own range [0, total weight]."""
    if len(reads) < 2:
        return None
    outside = [r for r in reads if r["lowest"] < -1e-6 or r["highest"] > 1 + 1e-6]
    if not outside:
        return None
    kind = max(("Dice", "IoU"), key=lambda k: sum(r["loss"] == k for r in reads))
    lo, hi = min(r["lowest"] for r in outside), max(r["highest"] for r in outside)
    top = max(r["weight"] for r in reads)
    finite = [v for v in losses if math.isfinite(v)]
    ran = ""
    if finite and (min(finite) < -1e-3 * top or max(finite) > top * (1 + 1e-3)):
        ran = f"; the loss ran {min(finite):.3g}..{max(finite):.3g}, outside its range [0, {top:.3g}]"
    return Verdict(NAME, "fail", f"a soft {kind} loss (read from the gradient it sends to the outputs on "
                   f"{len(reads)} observed steps) is given outputs that run {lo:.3g}..{hi:.3g} on {len(outside)} of "
                   f"them: raw scores, not probabilities{ran}", "probabilities in [0, 1] (a sigmoid or softmax)",
                   f"{kind} reads probabilities: apply torch.sigmoid(out) (one channel) or out.softmax(dim=1) "
                   f"(classes) before the {kind} loss, or end the model with it; on raw scores its denominator can "
                   "reach 0, so the loss spikes or falls below 0 whatever the learning rate")


def loss_input_verdict(ctc_softmax: bool, rate_reads: list[dict], ctc_read: Verdict | None = None) -> Verdict | None:
    """A fail for anything but log-probabilities given to ``F.ctc_loss`` (``ctc_read``, from
    :class:`CtcInputReader`; else probabilities read from the graph), or for log-rates that never went below 0 on
    two or more observed steps read as a Poisson NLL on log-rates while a tenth or more of the targets are below 1;
    else None."""
    if ctc_read is not None:
        return ctc_read
    if ctc_softmax:
        return Verdict(NAME, "fail", "F.ctc_loss is given a softmax's probabilities", "log-probabilities over the "
                       "classes (log_softmax)", "ctc_loss reads log-probabilities: end the model with "
                       "F.log_softmax(scores, dim=-1), not softmax; its backward assumes them, so the gradients "
                       "are wrong too")
    if len(rate_reads) < 2 or any(r["lowest"] < 0 for r in rate_reads):
        return None
    low = min(r["low_targets"] for r in rate_reads)
    if low < LOW_COUNTS:
        return None
    lowest = min(r["lowest"] for r in rate_reads)
    mean = sum(r["mean_target"] for r in rate_reads) / len(rate_reads)
    return Verdict(NAME, "fail", f"a Poisson NLL on log-rates (log_input=True) is given outputs that never went below "
                   f"0 on {len(rate_reads)} observed steps (lowest {lowest:.3g}): the rate exp(out) is never below 1, "
                   f"while {low:.0%} or more of the targets are below 1 (mean {mean:.3g})",
                   "log-rates of either sign", "with log_input=True the model outputs log-rates: remove the "
                   "Softplus/ReLU/exp that ends it, or keep the positive output as the rate and pass log_input=False")


def cut_outputs_verdict(reads: list[dict]) -> Verdict | None:
    """A fail when two or more observed steps read as a squared error on outputs that never went below 0 while a
    tenth or more of the targets are below 0 on each of them, reaching below 0 (their median ``reach``) at least
    :data:`REACH` as far as above it: targets of both signs (standardized, images in [-1, 1]). A noisy quantity that
    is never below 0 on average (a rate or intensity measured with noise, whose mean a ReLU output can fit) dips
    below 0 by its noise only, far less than it reaches above, and passes; else None."""
    if len(reads) < 2 or any(r["lowest"] < 0 for r in reads) or \
            sorted(r["reach"] for r in reads)[len(reads) // 2] < REACH:
        return None
    share = min(r["negative_targets"] for r in reads)
    if share < NEGATIVE_TARGETS:
        return None
    return Verdict(NAME, "fail", f"{CUT_OUTPUTS} on {len(reads)} observed steps, while {share:.0%} or more of "
                   "the targets are below 0: those targets can never be reached",
                   "outputs of either sign for targets of either sign", "an activation ends the model (a ReLU, "
                   "Softplus or Sigmoid after the last layer): end a regressor with its last Linear/Conv, or map the "
                   "targets into the activation's range")
