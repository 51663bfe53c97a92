"""For ``trainwell watch``: the first training step's batch, read before the watch holds the model.

The command knows the script's model only once its first optimizer step ends; a full-batch loop (a graph network
trained on its labelled nodes, Kipf & Welling 2017) validates right after that step, before any step the watch
observes. Its validation forward takes the same input as the training forward, and a loss over the training
nodes recomputed beside the validation's is told from the validation's by two facts the watch reads on its own
steps: the forward's input is a training batch (:class:`~trainwell.doctor.training_batches.TrainingBatches`), and
the training loss reaches a fixed subset of the output's rows (:func:`~trainwell.doctor.step_readings.
fixed_rows`), as many as the recomputed call reads. Both are read here from the first step too, by the global
module hooks the command runs before it knows the model: a weak reference to the outermost training forward's
input, and the rows of its output the step's backward reached (a gradient hook on the output, no extra pass).
"""

from __future__ import annotations

import weakref

import torch

from trainwell.doctor.step_readings import reached_rows


class FirstTrainingBatch:
    """The input of the latest outermost training forward before the watch began, and the output rows its
    backward reached."""

    def __init__(self):
        self._input: weakref.ref | None = None
        self.reached: torch.Tensor | None = None  # (rows,) bool, set by the backward through the latest output

    def forwarded(self, x, out) -> None:
        """An outermost forward with gradients in train mode took ``x`` and returned ``out``."""
        self._input = weakref.ref(x) if isinstance(x, torch.Tensor) else None
        self.reached = None
        if isinstance(out, torch.Tensor) and out.requires_grad and out.dim():
            out.register_hook(self._reached)

    def _reached(self, g: torch.Tensor) -> None:
        self.reached = reached_rows(g, g)

    def hand_to(self, probe) -> None:
        """Give the watch's probe what the first step showed: its input as a training batch, its reached rows as
        the first step's (read where no observed step has shown them yet)."""
        x = self._input() if self._input is not None else None
        if x is not None:
            probe.training_batches.trained_on(x)
        probe.first_reached = self.reached
        self._input, self.reached = None, None
