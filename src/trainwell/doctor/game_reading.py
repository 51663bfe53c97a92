"""Whether the watched loss is one player's in a game (a GAN's generator or discriminator), read from the first
loss's graph and the optimizers given (``p``: the watch's loop probe): its curve then follows the other player as
much as its own learning rate."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.copied_model import trained_copy
from trainwell.doctor.registration import other_models_parameters


def read_game(p, leaves: list[torch.Tensor]) -> None:
    """Whether the first loss is one player's in a game: it goes through another model's parameters that no
    given optimizer steps (the discriminator in a generator's loss), or, of several optimizers stepped in turn,
    one steps parameters this loss never reaches (a GAN's two players in one module, the discriminator's loss
    watched), or each steps after a backward pass of its own (the generator's loss watched, which goes through
    the discriminator's parameters too). A loss through a copy of the model alone, whose optimizer holds the
    model's parameters, is no game: :mod:`~trainwell.doctor.copied_model`."""
    if p.game is not None:
        return
    p.copy_trained = trained_copy(p.model, leaves, p.held_now())
    if p.copy_trained:  # the optimizer was built on a copy of the model that computes the loss: no game
        return
    if other_models_parameters(p.model, leaves, p.held_now()):
        p.game = "the loss goes through another model's parameters that it does not train (a GAN's discriminator)"
        p.asks_other_player = True
        return
    reached = {id(t) for t in leaves}
    if downstream_player(p, leaves):
        p.game = ("the loss goes on through another model's parameters that another optimizer steps on its own "
                  "loss (a GAN's discriminator)")
        p.asks_other_player = True
        return
    for i, o in enumerate(p.optimizers):
        held = [q for g in o.param_groups for q in g["params"] if q.requires_grad]
        if len(p.optimizers) > 1 and held and not any(id(q) in reached for q in held):
            p.game = (f"optimizer {i + 1} of {len(p.optimizers)} steps parameters this loss never reaches "
                      "(a GAN's other player, or another loss)")
            return
    given = {id(o) for o in p.optimizers}  # an online probe's own optimizer, say, is not a player
    # (a step before any backward pass the watch saw, the end of a cycle begun before it, tells no turn)
    turns = [(b, o) for b, o in p.turns or [] if o in given and b > 0]
    if len({o for _, o in turns}) > 1 and len({b for b, _ in turns}) > 1:
        p.game = ("its optimizers step in turn, each after a backward pass of its own (a GAN's two players: the "
                  "loss of one goes through the other's parameters)")
        p.asks_other_player = reaches_other_optimizers(p, reached)


def reaches_other_optimizers(p, reached: set[int]) -> bool:
    """The loss (the ids of the tensors it went through: ``reached``) goes through trainable parameters that the
    watch's first optimizer does not hold and another of its optimizers does: a generator's loss through its
    discriminator, both players watched at once, generator first."""
    own = {id(q) for g in p.optimizer.param_groups for q in g["params"]}
    return any(id(q) in reached and id(q) not in own and q.requires_grad
               for o in p.optimizers[1:] for g in o.param_groups for q in g["params"])


def downstream_player(p, leaves: list[torch.Tensor]) -> bool:
    """The loss goes on, after the model, through another model's parameters (the model's inputs were not
    computed from them) that a given optimizer steps and that optimizer steps none of the model's: the other
    player of a game, as a GAN's discriminator is in its generator's loss, watched with both optimizers."""
    own = {id(q) for q in p.model.parameters()}
    outside = {id(t) for t in leaves if isinstance(t, nn.Parameter) and t.requires_grad and id(t) not in own
               and id(t) not in p.upstream}
    for o in p.optimizers:
        held = {id(q) for g in o.param_groups for q in g["params"]}
        if held & outside and not held & own:
            return True
    return False
