"""Graphs kept for a whole short epoch and freed together at its end.

A list of outputs or losses made anew each epoch (``preds = []`` at the top of the epoch, ``preds.append(out)``
per step), or a running sum reset each epoch (``total_loss = 0``, ``total_loss += loss``), keeps every step's
autograd graph until the epoch ends. With long epochs the graphs of many earlier steps are alive at once; with a
small data set of a handful of steps per epoch they never are, but the pattern shows all the same: at each epoch's
start the graphs of all the previous epoch's steps die *at once*, none older left alive. A loop that holds the
latest output or loss in a variable (``out``, ``last_loss``), or a bounded window of them (``deque(maxlen=k)``),
frees one step's graph per step. :class:`FreedTogether` counts the drops of :data:`LEAST` or more steps' graphs at
once; :data:`DROPS` of them name the loop.
"""

from __future__ import annotations

#: steps whose graphs die at one count before it reads as a kept list dropped (more than the latest two steps a
#: loop may hold in variables, plus the one kept besides them)
LEAST = 3
#: such drops before the loop is named (three epochs)
DROPS = 3


class FreedTogether:
    """The steps whose graphs were alive at the previous count, and the drops of :data:`LEAST` or more of them at
    once with no older step's graph left alive."""

    def __init__(self) -> None:
        self._before: dict[int, bool] = {}  # step -> its tensor (output or loss) itself alive, at the last count
        self.drops = 0
        self.most = 0  # the most steps freed at one drop
        self.tensors = 0  # of the steps freed at the drops, those whose tensor was alive till then
        self.freed = 0  # steps freed at the drops

    def counted(self, alive: dict[int, bool]) -> None:
        """One count: ``alive`` maps each step whose graph is alive now to whether its tensor is alive too."""
        gone = [s for s in self._before if s not in alive]
        if len(gone) >= LEAST and not any(s < max(gone) for s in alive):
            self.drops += 1
            self.most = max(self.most, len(gone))
            self.freed += len(gone)
            self.tensors += sum(self._before[s] for s in gone)
        self._before = dict(alive)

    def named(self) -> bool:
        """Whether the graphs of whole epochs were freed together :data:`DROPS` times or more."""
        return self.drops >= DROPS

    def of_tensors(self) -> bool:
        """Whether the tensors themselves were kept (a list), not a tensor computed from them (a running sum)."""
        return self.tensors >= 0.9 * self.freed
