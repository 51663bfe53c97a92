"""``doctor.watch``'s readings of how the model is wired, the pre-flight's own run again at the report (so that
``trainwell watch`` names them without ``--check``): a bidirectional recurrent layer read only where one of its
directions has read one token (:mod:`~trainwell.doctor.bidirectional_read`), one BatchNorm module applied after two
different layers (:mod:`~trainwell.doctor.shared_batchnorm`) and outputs that depend on the example's position in
the batch (:mod:`~trainwell.doctor.batch_position`: a (max_len, 1, d) positional encoding sliced by the batch size;
read, as the pre-flight reads it, only where the rows do not mix)
and a functional dropout left on in eval mode (:mod:`~trainwell.doctor.eval_dropout`); and, from the modules alone,
one layer object placed at several positions of a container (``[layer] * 2``: one set of weights applied twice,
:func:`~trainwell.doctor.registration.repeated_layers`).
Each reads the wiring, not the weights: the trained model is read on the first 8 examples of the first observed
training forward (a model called on one tensor), with the probe's hooks recording nothing of it."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import torch

from trainwell.doctor.batch_independence import batch_independence
from trainwell.doctor.bidirectional_read import one_token_direction
from trainwell.doctor.eval_dropout import eval_dropout
from trainwell.doctor.registration import repeated_layers
from trainwell.doctor.shared_batchnorm import shared_batchnorm
from trainwell.doctor.verdict import Verdict


def _position(model, x) -> Verdict | None:
    """The position-in-the-batch fail, read as the pre-flight reads it: only where the rows along the first axis do
    not mix (a sequence-first model fed (T, B, F) mixes its positions there, by design)."""
    verdict = batch_independence(model, x)
    return verdict if verdict.status == "fail" and "its position in the batch" in verdict.value else None


READINGS = (one_token_direction, shared_batchnorm, _position, eval_dropout)


def _eager():
    """Compiled modules run eagerly inside (``torch.compiler.set_stance("force_eager")``) where torch's compiler
    was imported: these few-example forwards compile nothing (their shapes and modes are not the loop's)."""
    return torch.compiler.set_stance("force_eager") if "torch._dynamo" in sys.modules else nullcontext()


def loop_wiring(probe, forward: tuple | None) -> list[Verdict]:
    """The verdicts of the readings that find their fault (named ``loop: ...``), on the first observed training
    forward ``forward`` (its (args, kwargs)); none without one, for a forward given more than one tensor, or where
    a reading cannot follow the model."""
    repeated = repeated_layers(probe.model)
    found = [] if repeated is None else [Verdict(
        "loop: parameters registered", "warn", repeated, "each layer its own module", "one layer object placed "
        "several times in a container shares one set of weights (a list repeated with * n: [nn.Linear(64, 64), "
        "nn.ReLU()] * 3): build each layer anew, e.g. [layer for _ in range(n) for layer in (nn.Linear(64, 64), "
        "nn.ReLU())]")]
    if forward is None:
        return found
    args, kwargs = forward
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or not args[0].dim():
        return found
    x = args[0][:8].detach()
    probe.reading = True  # the probe's hooks record nothing of these forwards
    try:
        for reading in READINGS:
            try:
                with _eager():
                    verdict = reading(probe.model, x)
            except Exception:  # noqa: BLE001 - a model this reading cannot follow gets no verdict from it
                verdict = None
            if verdict is not None:
                found.append(Verdict("loop: " + verdict.check, verdict.status, verdict.value, verdict.expected,
                                     verdict.advice))
    finally:
        probe.reading = False
    return found


__all__ = ["loop_wiring"]
