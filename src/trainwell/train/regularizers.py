"""Callbacks that apply regularizers after each optimizer step: the max-norm constraint and the stochastic delta
rule's spread update."""

from __future__ import annotations

from trainwell.nn.sdr import sdr_layers
from trainwell.regularize import max_norm_
from trainwell.train.callbacks import Callback, State


class MaxNorm(Callback):
    """After every update, clip each unit's incoming weight vector to norm <= c (Srivastava et al. 2014)."""

    def __init__(self, c: float):
        if not c > 0:
            raise ValueError(f"max-norm c = {c} is not allowed: use a number > 0")
        self.c = c

    def on_fit_start(self, state: State) -> None:
        max_norm_(state.model, self.c)

    def on_batch_end(self, state: State) -> None:
        max_norm_(state.model, self.c)


class SDRUpdate(Callback):
    """sigma <- zeta (beta |dE/dw*| + sigma) after every step; with ``anneal``, zeta = zeta0^(epoch + 1)
    (Frazier-Logue & Hanson 2018's reference code)."""

    def __init__(self, beta: float = 5.0, zeta: float = 0.99, anneal: bool = False):
        self.beta, self.zeta0, self.anneal = beta, zeta, anneal
        self.zeta = zeta

    def on_epoch_start(self, state: State) -> None:
        self.zeta = self.zeta0 ** (state.epoch + 1) if self.anneal else self.zeta0

    def on_batch_end(self, state: State) -> None:
        for layer in sdr_layers(state.model):
            layer.update_sigma(self.beta, self.zeta)
