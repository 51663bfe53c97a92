"""What an observed step's outputs and their gradient say once ``w.step(loss, y=...)`` hands over the loss's value
and the targets: :meth:`trainwell.doctor.watch.Watch.step` calls these after an observed step only, so the loss is
turned into a float (a device sync) on those steps and never on the others.

With the value: a regression loss's reduction over its micro-batches (:mod:`~trainwell.doctor.regression_reduction`),
a policy gradient over two actions (:func:`~trainwell.doctor.policy_gradient.two_class_signs`), binary
cross-entropy and its soft targets (:func:`~trainwell.doctor.binary_floor.read_binary`). With the targets: the
class scores against them (multi-hot rows, probability rows for a KL divergence, soft targets).
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.binary_floor import read_binary
from trainwell.doctor.distribution_targets import probability_rows, read_against
from trainwell.doctor.form_value import disagrees
from trainwell.doctor.kl_value import kl_on_probabilities
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.loop_verdicts import grad_scaler_unscale
from trainwell.doctor.multi_hot import cross_entropy_against
from trainwell.doctor.policy_gradient import two_class_signs
from trainwell.doctor.pos_weight import read_pos_weight
from trainwell.doctor.regression_reduction import reduction
from trainwell.doctor.soft_targets import mark_soft_step, soft_cross_entropy
from trainwell.doctor.swapped_arguments import read_swapped


def read_with_value(probe: LoopProbe, loss: torch.Tensor | float, y: torch.Tensor | None,
                    inputs: list[torch.Tensor] = ()) -> None:
    """Read the pairs the observed step left on ``probe`` against the loss's value (each read once, then cleared);
    ``inputs``: the tensors the step's forward took (the targets a reconstruction loss may equal)."""
    _read_implied(probe, loss)
    regressed, two, binary, nll = probe.regressed, probe.two_class, probe.binary_pair, probe.nll_pair
    # class scores no targets were given for (w.step(loss) without y): read as kl_div on probabilities
    scored, probe.scored = (probe.scored, None) if y is None else (None, probe.scored)
    if regressed is None and two is None and binary is None and scored is None and nll is None:
        return
    probe.regressed = probe.two_class = probe.binary_pair = probe.nll_pair = None
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    step = probe.steps[-1] if probe.steps else None
    one = step is not None and step["backwards"] == 1
    if nll is not None and one and math.isfinite(value):  # NLL's gradient on raw scores is also BCE with logits'
        # given (one-hot targets, outputs): the value tells them apart
        step["swapped"] = read_swapped(nll[0], nll[1] * grad_scaler_unscale(step), value, y) is not None
    if scored is not None and one and step["zero_sum"] and math.isfinite(value) and value < 0:
        read = kl_on_probabilities(scored[0], scored[1] * grad_scaler_unscale(step), value)
        if read is not None:
            probe.distribution_reads.append(read)
    if regressed is not None:  # one forward per backward pass (k micro-batches): each pass's outputs are known
        read = step is not None and step["backwards"] == len(regressed)
        probe.reductions.append(reduction(regressed, value, grad_scaler_unscale(step)) if read else None)
    if two is not None and one and step["form"] == "two_classes" and not probe.multi_output and \
            math.isfinite(value) and two_class_signs(*two, value, 1 / grad_scaler_unscale(step)):
        step["form"] = "signed_weights"  # with 2 classes only the value tells a policy gradient's signed weights
    if binary is not None:  # the gradient of loss x scale under a GradScaler (or a static scale divided out)
        references = [y, *inputs] if isinstance(y, torch.Tensor) else list(inputs)
        read = read_binary(binary[0], binary[1] * grad_scaler_unscale(step), value, references) if one else None
        if read is None and one:  # BCE with logits given (targets, outputs)
            read = read_swapped(binary[0], binary[1] * grad_scaler_unscale(step), value, y)
        if read is not None and "targets" in read:  # whether the targets given as y are the ones read
            read["scale"] = 1 / grad_scaler_unscale(step)
            targets = read.pop("targets")
            read["given"] = isinstance(y, torch.Tensor) and y.is_floating_point() and y.shape == targets.shape and \
                bool(torch.allclose(y.detach().cpu().double(), targets.cpu(), atol=1e-3))
        probe.binary_reads.append(read)
        if one and isinstance(y, torch.Tensor) and len(probe.pos_weight_reads) < 64:  # BCE's pos_weight per column
            probe.pos_weight_reads.append(read_pos_weight(*binary, y))


def _read_implied(probe: LoopProbe, loss: torch.Tensor | float) -> None:
    """The observed step's form that is a bug (NLL on raw scores, a double softmax) left unread when the loss's
    value is far from the value that form gives on the step's outputs: another loss whose gradient looked like it on
    this step (:mod:`~trainwell.doctor.form_value`). Read once, after the observed step."""
    step = probe.steps[-1] if probe.steps else None
    implied = step.pop("implied", None) if step is not None else None
    # several outputs: the value holds the other heads' terms; floating-point targets of the outputs' shape: BCE
    # with logits given (targets, outputs) has NLL's gradient, and its own reading (read_swapped) needs the form
    if implied is None or step["backwards"] != 1 or probe.multi_output or probe.nll_pair is not None:
        return
    if step["form"] == "nll" and step.get("log_probs") is not False:
        return  # NLL on log-probabilities is no bug: its value is not needed
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if disagrees(implied, value, grad_scaler_unscale(step)):
        step["form"], step["log_probs"] = None, None


def read_with_targets(probe: LoopProbe, y: torch.Tensor):
    """The observed step's class scores against the targets ``y`` (None when no scores were kept): the multi-hot
    reading it returns, probability rows read as a KL divergence or cross-entropy to them (GradScaler's scale
    divided out), and the step marked when it is cross-entropy to soft targets."""
    if probe.scored is None:
        return None
    (z, g), probe.scored = probe.scored, None
    y = y.detach()
    if probe.steps and probe.steps[-1]["form"] == "nll" and y.is_floating_point() and y.numel() == z.numel():
        probe.nll_pair = (z, g)  # read against the loss's value: BCE with logits given (targets, outputs)?
    against = cross_entropy_against(z, g, y)
    if probability_rows(y, z):
        read = read_against(z, g, y)
        if read is not None and probe.steps:
            read["weight"] *= grad_scaler_unscale(probe.steps[-1])
        probe.distribution_reads.append(read)
    if probe.steps:
        mark_soft_step(probe.steps[-1], soft_cross_entropy(z, g, y))
    return against
