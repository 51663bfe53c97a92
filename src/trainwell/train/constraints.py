"""Constraints: callbacks that change the weights (or their noise) after each optimizer step, as opposed to the
penalties of :mod:`trainwell.regularize`, which add to the loss.

- :class:`MaxNorm`: each unit's incoming weight vector clipped to norm <= c (Srivastava et al. 2014).
- :class:`SDRUpdate`: the stochastic delta rule's spread update of each weight's sigma (Frazier-Logue & Hanson 2018).
"""

from __future__ import annotations

import math

from trainwell.nn.dropout import real_number
from trainwell.nn.sdr import sdr_layers
from trainwell.regularize import max_norm_
from trainwell.train.callbacks import Callback, State


class MaxNorm(Callback):
    """After every update, clip each unit's incoming weight vector to norm <= c (Srivastava et al. 2014)."""

    def __init__(self, c: float):
        if not c > 0:
            raise ValueError(f"c={c} is not allowed: use a number > 0")
        self.c = c

    def on_fit_start(self, state: State) -> None:
        max_norm_(state.model, self.c)

    def on_batch_end(self, state: State) -> None:
        max_norm_(state.model, self.c)


class SDRUpdate(Callback):
    """The stochastic delta rule's spread update sigma <- zeta (beta |dE/dw*| + sigma) (Frazier-Logue & Hanson 2018).

    Args:
        beta: growth of sigma per unit of gradient (reference code: 5).
        zeta: decay factor per update (reference code: 0.99); with ``anneal``, zeta = zeta0^(epoch + 1).
        per_epoch: sigma updates per epoch, evenly spaced, the last at the end of the epoch. The reference code
            (sdr-densenet) updates twice per epoch, and its published numbers come from that schedule, so 2 is
            the default; ``None`` updates after every optimizer step (sigma then grows ~steps/2 times faster
            for the same beta, which is why beta = 5 blows up with it).
        steps_per_epoch: batches per epoch, to place the mid-epoch updates from the first epoch on; without it
            the count is measured during the first epoch, which then gets only its end-of-epoch update.
    """

    def __init__(self, beta: float = 5.0, zeta: float = 0.99, anneal: bool = False, per_epoch: int | None = 2,
                 steps_per_epoch: int | None = None):
        if not (math.isfinite(real_number("beta", beta, "[0, inf)")) and beta >= 0):
            raise ValueError(f"beta={beta} is not allowed: use a number >= 0")
        if not 0 < real_number("zeta", zeta, "(0, 1]") <= 1:
            raise ValueError(f"zeta={zeta} is not allowed: use a number in (0, 1]")
        beta, zeta = float(beta), float(zeta)
        if per_epoch is not None and (isinstance(per_epoch, bool) or not isinstance(per_epoch, int) or per_epoch < 1):
            raise ValueError(f"per_epoch={per_epoch!r} is not allowed: use an integer >= 1, or None for every step")
        self.beta, self.zeta0, self.anneal, self.per_epoch = beta, zeta, anneal, per_epoch
        self.steps_per_epoch = steps_per_epoch
        self.zeta = zeta
        self.updates = 0  # sigma updates done in this fit
        self._batch = 0
        self._measured: int | None = None

    def _update(self, state: State) -> None:
        for layer in sdr_layers(state.model):
            layer.update_sigma(self.beta, self.zeta)
        self.updates += 1

    def on_fit_start(self, state: State) -> None:
        self.updates, self._measured = 0, None

    def on_epoch_start(self, state: State) -> None:
        self.zeta = self.zeta0 ** (state.epoch + 1) if self.anneal else self.zeta0
        self._batch = 0

    def on_batch_end(self, state: State) -> None:
        self._batch += 1
        if self.per_epoch is None:
            self._update(state)
            return
        n = self.steps_per_epoch or self._measured
        if n and self._batch < n and self._batch in {round(n * (k + 1) / self.per_epoch)
                                                     for k in range(self.per_epoch - 1)}:
            self._update(state)

    def on_epoch_end(self, state: State) -> None:
        if self.per_epoch is not None and self._batch:
            self._update(state)  # the gradient of the epoch's last step is still in .grad
        self._measured = self._measured or self._batch

    def state_dict(self) -> dict:
        return {"updates": self.updates, "measured": self._measured}

    def load_state_dict(self, state: dict) -> None:
        self.updates, self._measured = state["updates"], state["measured"]
