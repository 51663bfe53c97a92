"""Two ``doctor.watch`` blocks open at once on models that feed each other: a GAN's discriminator watched with its
own optimizer reads the generator's samples through ``fake.detach()``, which carries no graph back to the
generator. The samples still share their storage with the generator's output, and the generator's watch saw that
output leave its model: the discriminator's loss is then one player's in a two-player game, not a supervised
curve (its value follows the other player as much as its own learning rate). Both are required: the model reads
the other's outputs, and the other's loss goes through this model's parameters (a pipeline trained stage by stage,
whose later stage reads the earlier one's detached outputs, is not a game: the earlier stage's loss never reaches
the later one)."""

from __future__ import annotations

import weakref

import torch

from trainwell.doctor import outputs as O

#: the probes of the watch blocks open now
_OPEN: weakref.WeakSet = weakref.WeakSet()

#: how many of a model's latest training outputs are remembered (a generator called for D's and G's steps)
_KEPT = 4


def opened(probe) -> None:
    """The watch of ``probe`` is open: its model's outputs can be found in another open watch's inputs."""
    probe.produced = []
    _OPEN.add(probe)


def loss_read(probe, leaves: list[torch.Tensor]) -> None:
    """The tensors the watch's first loss went through (ids), for the other open watches to look for theirs."""
    probe.loss_leaves = {id(t) for t in leaves}


def closed(probe) -> None:
    _OPEN.discard(probe)
    probe.produced = []


def produced(probe, out) -> None:
    """Remember where the model's floating-point outputs of this forward are stored (their addresses only)."""
    if len(_OPEN) < 2:
        return
    found = [t.untyped_storage().data_ptr() for t in O.leaves(out) if isinstance(t, torch.Tensor) and
             t.is_floating_point() and t.numel()]
    probe.produced = (probe.produced + found)[-_KEPT:]


def producer(probe, x: torch.Tensor) -> str | None:
    """The class name of the model of another open watch whose latest outputs ``x`` shares its storage with (a
    detached view of them) and whose first loss went through this model's parameters, or None."""
    if len(_OPEN) < 2 or not x.is_floating_point() or not x.numel():
        return None
    at = x.untyped_storage().data_ptr()
    for other in list(_OPEN):
        if other is not probe and at in other.produced and \
                any(id(q) in other.loss_leaves for q in probe.model.parameters()):
            return type(other.model).__name__
    return None
