"""The readings of how a user's model is wired, each run once on a few examples before the pre-flight checks: a
network with no nonlinearity (:mod:`~trainwell.doctor.linear_model`), a residual branch broadcast onto its input
(:mod:`~trainwell.doctor.broadcast_skip`), input positions the output never reads
(:mod:`~trainwell.doctor.unread_positions`), a tensor the forward reads that is kept as a plain attribute on
another dtype or device (:mod:`~trainwell.doctor.unregistered_tensors`), token embeddings scaled by sqrt(d)
twice (:mod:`~trainwell.doctor.embedding_factor`, a fail), a bidirectional recurrent layer read where one of
its directions has read one token (:mod:`~trainwell.doctor.bidirectional_read`) and one BatchNorm module applied
after two different layers (:mod:`~trainwell.doctor.shared_batchnorm`). Each adds a verdict only where
it finds its fault; a reading that cannot follow the model adds none."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.bidirectional_read import one_token_direction
from trainwell.doctor.broadcast_skip import broadcast_skip_verdict
from trainwell.doctor.embedding_factor import scaled_twice
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.linear_model import NAME as LINEAR
from trainwell.doctor.linear_model import affine_verdict, defer_to_linear
from trainwell.doctor.shared_batchnorm import shared_batchnorm
from trainwell.doctor.unread_positions import NAME as UNREAD
from trainwell.doctor.unread_positions import defer_to_unread, unread_verdict
from trainwell.doctor.unregistered_tensors import unregistered_verdict
from trainwell.doctor.verdict import Verdict

READINGS = (affine_verdict, broadcast_skip_verdict, unread_verdict, unregistered_verdict, scaled_twice,
            one_token_direction, shared_batchnorm)


def structure_verdicts(model: nn.Module, x: torch.Tensor | Inputs) -> list[Verdict]:
    """The verdicts of every reading that finds its fault on ``x`` (an exception inside one is no verdict)."""
    found = []
    for reading in READINGS:
        try:
            verdict = reading(model, x)
        except Exception:  # noqa: BLE001 - see the module docstring
            verdict = None
        if verdict is not None:
            found.append(verdict)
    return found


def defer_to_structure(verdicts: list[Verdict], found: list[Verdict]) -> list[Verdict]:
    """A failed or warned overfit or baseline names a linear network or unread input positions first."""
    by_name = {v.check: v for v in found}
    return defer_to_unread(defer_to_linear(verdicts, by_name.get(LINEAR)), by_name.get(UNREAD))
