"""A training step captured once as a CUDA graph and replayed (PyTorch's CUDA Graphs: ``torch.cuda.CUDAGraph``;
NVIDIA, "Getting Started with CUDA Graphs", 2019).

On a GPU a small step - a population of MLPs is a few dozen kernels of microseconds each - costs more to launch
from Python than to run. Captured, the whole step (gather, forward, backward, optimizer update) is one graph
launch: the kernels run back to back, with the same addresses and the same arithmetic as the eager step.

A captured step reads its tensor inputs from fixed buffers: each call copies its inputs into them and replays the
graph. Everything else the step touches (parameters, optimizer state, the data tensors) must keep its storage
between calls; :meth:`CapturedStep.reset` forgets the graphs when it does not (e.g. optimizer state loaded from a
checkpoint). Each distinct ``key`` (the shapes, the code path) gets its own graph after ``warmup`` eager calls,
which create any state the step allocates on its first call, on a side stream as torch's documentation asks.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Hashable

import torch


class CapturedStep:
    """``step(*inputs, **fixed) -> tuple of tensors``, eager for the first ``warmup`` calls of each ``key``, then
    captured and replayed. ``inputs`` are copied into the graph's buffers at each call; ``fixed`` (anything else
    the step reads: tensors that keep their storage, flags) is captured as it is on the capturing call, so the
    ``key`` must tell apart every ``fixed`` that changes the computation. The outputs returned are copies (the
    graph's own outputs are overwritten by the next replay).

    If capturing fails (the step synchronizes with the host, say), the step stays eager from then on, with a
    warning; the failed capture ran nothing, so the call is done again eagerly.
    """

    def __init__(self, step: Callable[..., tuple[torch.Tensor, ...]], warmup: int = 2, max_graphs: int = 8):
        if warmup < 1:
            raise ValueError(f"warmup = {warmup} is not allowed: a step must run eagerly at least once (it creates "
                             "its state) before it is captured")
        self.step, self.warmup = step, warmup
        self.max_graphs = max_graphs  # each graph keeps its own memory: keys past this many stay eager
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], tuple[torch.Tensor, ...]]] = {}
        self.calls: Counter = Counter()
        self.failed = False
        self.replays = 0
        self._side: torch.cuda.Stream | None = None  # the eager steps' stream, made on the first one

    def reset(self) -> None:
        """Forget every graph (the step's state was replaced): the next calls warm up and capture again."""
        self.graphs.clear()
        self.calls.clear()

    def __call__(self, key: Hashable, *inputs: torch.Tensor, **fixed) -> tuple[torch.Tensor, ...]:
        entry = self.graphs.get(key)
        if entry is None:
            self.calls[key] += 1
            if self.failed or self.calls[key] <= self.warmup or len(self.graphs) >= self.max_graphs:
                return self._eager(inputs, fixed)
            entry = self._capture(key, inputs, fixed)
            if entry is None:
                return self._eager(inputs, fixed)
        graph, static_inputs, static_outputs = entry
        for buffer, value in zip(static_inputs, inputs, strict=True):
            buffer.copy_(value, non_blocking=True)
        graph.replay()
        self.replays += 1
        return tuple(out.clone() for out in static_outputs)

    def _eager(self, inputs, fixed) -> tuple[torch.Tensor, ...]:
        if self._side is None:
            self._side = torch.cuda.Stream()
        side = self._side
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            outputs = self.step(*inputs, **fixed)
        torch.cuda.current_stream().wait_stream(side)
        return outputs

    def _capture(self, key, inputs, fixed):
        static_inputs = [t.clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static_outputs = tuple(self.step(*static_inputs, **fixed))
        except RuntimeError as e:
            self.failed = True
            warnings.warn(f"the training step could not be captured as a CUDA graph ({str(e).splitlines()[0]}); "
                          "it runs eagerly", RuntimeWarning, stacklevel=3)
            return None
        entry = (graph, static_inputs, static_outputs)
        self.graphs[key] = entry
        return entry


__all__ = ["CapturedStep"]
