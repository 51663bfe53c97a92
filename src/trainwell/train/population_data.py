"""What a population learner checks of the data it is given, as a separate fit's Trainer checks it: the
inputs' dtype and, for a plain MLP, their feature count; the labels' shape ((N,) shared or (M, N) one row per
member) and, once before the first step, their values against the class count. A mixin of
:class:`~trainwell.train.population.PopulationLearner` (``self.leaves``, ``self.plan``, ``self.size``,
``self.base``, ``self.device``, ``self.loss_fn``, ``self.forward``).
"""

from __future__ import annotations

import math

import torch

from trainwell.train.input_checks import check_input_dtype, integer_inputs_message
from trainwell.train.losses import check_labels, class_scores


class PopulationDataChecks:
    """The population learner's data checks (see the module docstring)."""

    def check_inputs(self, x: torch.Tensor, what: str) -> None:
        """Refuse inputs of another floating dtype than the members' parameters, and integer inputs to a plain MLP
        (a model with an embedding takes integers)."""
        param = next(iter(self.leaves.values()))
        check_input_dtype(x, param, what)
        if self.plan is None:
            return
        if not x.is_floating_point():
            raise TypeError(integer_inputs_message(
                x, what, f"the members' first layer computes in {str(param.dtype).removeprefix('torch.')}"))
        features = self.plan[0][2]
        if self.own_rows and what == "train":  # (M, N, ...): each member's own rows
            x = x.flatten(0, 1) if x.dim() > 2 else x
        per_example = math.prod(x.shape[1:])
        if len(x) and (x.dim() < 2 or per_example != features):
            raise ValueError(f"{what} inputs of shape {tuple(x.shape)} have {per_example} features per example; the "
                             f"members' first layer takes {features}")

    def check_label_shape(self, x: torch.Tensor, y: torch.Tensor, what: str) -> None:
        """Labels shared by all members (N,) or one row per member (M, N), one per input."""
        if y.dim() == 2 and y.shape[0] != self.size:
            raise ValueError(f"{what} labels of shape {tuple(y.shape)}: give (N,) labels shared by every member, or "
                             f"({self.size}, N): one row per member" + (" (y.squeeze(1))" if y.shape[1] == 1 else ""))
        if y.dim() not in (1, 2) or y.shape[-1] != len(x):
            raise ValueError(f"{what} labels of shape {tuple(y.shape)} for {len(x)} inputs: give (N,) labels shared "
                             f"by every member, or ({self.size}, {len(x)}): one row per member")

    def check_own_rows(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """With ``own_rows``: inputs (M, N, ...) and labels (M, N), one block of rows per member."""
        if x.dim() < 2 or len(x) != self.size or tuple(y.shape) != tuple(x.shape[:2]):
            raise ValueError(f"own_rows: each member trains on its own rows, so give inputs ({self.size}, N, ...) "
                             f"and labels ({self.size}, N); got inputs {tuple(x.shape)} and labels {tuple(y.shape)}")

    def _check_labels(self, x: torch.Tensor, y: torch.Tensor, what: str = "train") -> None:
        """Once, before the first step (and the first evaluation): the labels' shape, and their values inside
        [0, C) for a class-index loss (what a separate fit checks, :func:`~trainwell.train.losses.check_labels`)."""
        self.check_label_shape(x, y, what)
        training = self.base.training
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # no random draw taken from the members' steps
            self.base.eval()
            # (1, C): member 0, one row
            scores = class_scores(self.forward(x[:1].to(self.device), shared=True, what=what))[0]
        self.base.train(training)
        check_labels(scores, y.reshape(-1), self.loss_fn)
