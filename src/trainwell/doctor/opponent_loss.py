"""A loss that goes through another model's parameters towards one target value: a GAN generator's, as
``doctor.check`` sees it.

The DCGAN tutorial's generator loss is ``criterion(netD(netG(noise)).view(-1), label)`` with every label "real":
it reaches the discriminator's parameters, which are not the generator's and which its optimizer does not hold.
Against a discriminator held fixed, as the checks hold it, the best response is one output for every noise input,
the sample the discriminator rates most real (Goodfellow et al. 2014; the mode collapse that training against a
moving discriminator avoids): an input-independent model fits as well as the generator, and the
input-independent baseline cannot tell anything. A loss through another module with targets that differ (a
perceptual loss against the batch's own images) is read as usual.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.registration import graph_leaves, other_models_parameters
from trainwell.doctor.verdict import Verdict

BASELINE = "input-independent baseline"


def opponent_parameters(model: nn.Module, x: torch.Tensor | Inputs, y, loss_fn: Callable,
                        optimizer: torch.optim.Optimizer | None = None) -> int:
    """How many parameters of another module (held by no attribute of the model, nor by ``optimizer``) the loss
    goes through when every target of the batch is one value; 0 otherwise."""
    if not isinstance(y, torch.Tensor) or y.numel() < 2 or not bool((y == y.reshape(-1)[0]).all()):
        return 0
    with torch.enable_grad():
        loss = loss_fn(call(model, x), y)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]} if optimizer is not None else set()
    return other_models_parameters(model, graph_leaves(loss), held)


def baseline_against_opponent(verdicts: list[Verdict], opponent: int) -> list[Verdict]:
    """The baseline's warning or failure becomes a skip that says why, when the loss goes through ``opponent``
    (> 0) parameters of another model towards one target value."""
    if not opponent:
        return verdicts
    return [Verdict(v.check, "skip", f"skipped: the loss goes through {opponent} parameter tensor(s) of another model "
                    "towards one target value (a GAN generator against its discriminator): against that model held "
                    "fixed, one output for every input is the best response, so the inputs need not help "
                    f"({v.value})", v.expected, "")
            if v.check == BASELINE and v.status in ("warn", "fail") else v for v in verdicts]
