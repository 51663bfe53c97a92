"""A loop that seeds torch's random generator inside the batch loop, every step (``torch.manual_seed(42)`` at the
top of each step, or in the dataset's ``__getitem__``): every step then draws the same random numbers. Dropout
drops the same units on every step - one fixed sub-network trains, the dropped units never learn, yet all of them
are used at test time - and a random augmentation or noise is the same on every step.

Read from torch's global random state (the CPU generator's, and the CUDA generator's of the device the model's
batches are on) at two points of each of the first :data:`READ_STEPS` steps: where the step's first training
forward starts and at ``w.step``. Without a reset the state only moves on (Mersenne Twister, Philox): a state
read again after numbers were drawn in between was set back. So a step whose state moved from its forward to its
``w.step`` and ends where the previous step ended, or whose forward starts where the previous one started although
that step drew, was seeded anew. Seeding once before the loop, or once per epoch (named by ``loop: batch order``
when it repeats the shuffle), never repeats a state from one step to the next; a model that draws nothing never
moves the state; a ``torch.random.fork_rng()`` block puts the state back as it found it; a DataLoader's
``worker_init_fn`` seeds the workers' generators, not the loop's."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.verdict import Verdict

NAME = "loop: random state reseeded"
#: the verdict's value starts with this: the loss curve and the updates read as they are
SAME_DRAWS = "every step draws the same random numbers"
READ_STEPS = 64  # the w.step calls read: the reads stop after them
MIN_REPEATS = 3  # steps seeded anew, at least, and half the steps whose state moved


def _state(device: torch.device | None) -> int:
    """A fingerprint of the global random state: the CPU generator's and, where given, a CUDA device's."""
    key = hash(torch.random.get_rng_state().numpy().tobytes())
    if device is not None:
        key = hash((key, torch.cuda.get_rng_state(device).numpy().tobytes()))
    return key


class RandomStates:
    """The global random state where each step's first training forward starts and at each ``w.step``, over the
    first :data:`READ_STEPS` steps (``pairs``: one (forward start or None, ``w.step``) per step)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[int | None, int]] = []
        self._forward: int | None = None  # this step's reading at its first training forward
        self._device: torch.device | None = None  # the CUDA device the training batches are on

    @property
    def reading(self) -> bool:
        return len(self.pairs) < READ_STEPS

    def forward_started(self, module: nn.Module, x: torch.Tensor | None) -> None:
        """A forward of the watched ``module`` with gradients on begins, on the batch ``x`` (read in train mode)."""
        if self._forward is not None or not self.reading or not module.training:
            return
        if isinstance(x, torch.Tensor) and x.is_cuda:
            self._device = x.device
        self._forward = _state(self._device)

    def stepped(self) -> None:
        """``w.step`` is called."""
        if self.reading:
            self.pairs.append((self._forward, _state(self._device)))
        self._forward = None

    def repeats(self) -> tuple[int, int]:
        """(steps seeded anew, steps whose state moved) after the first."""
        seeded = moved = 0
        for (f0, s0), (f1, s1) in zip(self.pairs, self.pairs[1:], strict=False):
            drew = f1 is not None and f1 != s1  # numbers drawn from the forward's start to w.step
            drew_before = f0 is not None and f0 != s0
            moved += drew or s1 != s0
            seeded += (drew and s1 == s0) or (drew_before and f1 is not None and f1 == f0)
        return seeded, moved

    def verdict(self) -> Verdict | None:
        """A warn when most steps were seeded back to the same state (see the module's docstring); else None."""
        seeded, moved = self.repeats()
        if seeded < MIN_REPEATS or 2 * seeded < moved:
            return None
        return Verdict(NAME, "warn", f"{SAME_DRAWS}: the random state is set back to the same point on {seeded} of "
                       f"{len(self.pairs) - 1} steps (the same dropout masks, augmentation and noise each step)",
                       "new random numbers every step",
                       "torch.manual_seed() (or set_rng_state) runs every step, in the batch loop or the dataset's "
                       "__getitem__: seed once before the loop")


__all__ = ["MIN_REPEATS", "NAME", "READ_STEPS", "SAME_DRAWS", "RandomStates"]
