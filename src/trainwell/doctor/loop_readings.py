"""What :func:`trainwell.doctor.watch` reads from a user's model at the report, after the loop: whether ``train()``
and ``eval()`` change its output, and the trainable parameters it gained during the loop that no optimizer holds.
:class:`~trainwell.doctor.loop_probe.LoopProbe` records during the loop what these readings start from."""

from __future__ import annotations

import torch

from trainwell.doctor.loop_forward_hooks import first_tensor
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.step_record import held
from trainwell.nn.modes import module_modes, restore_modes


def added_unheld(probe: LoopProbe) -> list[str]:
    """Trainable parameters the model holds now that it did not hold when the watch started (a layer replaced,
    ``model.head = nn.Linear(...)``), that received gradients, and that no optimizer given to the watch holds.
    A copy that no loss reaches (an EMA teacher updated by hand, its ``.grad`` None) is not one, nor a layer held
    by the optimizer of the loop the script moved on to (a head replaced for fine-tuning with a new optimizer: its
    gradients are that loop's)."""
    start = {id(p) for p in probe.named.values()}
    owned = probe.held_now().union(*(held(o) for o in probe.successors))
    return [n for n, p in probe.model.named_parameters()
            if p.requires_grad and p.grad is not None and id(p) not in start and id(p) not in owned]


def mode_matters(probe: LoopProbe) -> bool:
    """Whether ``train()`` and ``eval()`` change the model's output: a dropout or BatchNorm module, or a forward
    that reads ``self.training`` itself (``F.dropout(h, p, self.training)``), found by running 4 examples of a
    training batch both ways with one seed (at the report: no hooks, gradients or random state touched)."""
    if probe.mode_sensitive:
        return True
    if probe.mode_sample is None:
        return False
    args, kwargs = probe.mode_sample
    head = (tuple(a[:4] if isinstance(a, torch.Tensor) and a.dim() else a for a in args),
            {k: v[:4] if isinstance(v, torch.Tensor) and v.dim() else v for k, v in kwargs.items()})
    # 4 rows, or the whole batch for a model that takes all its input at once (a graph network)
    return any(_outputs_differ(probe, *sample) for sample in (head, (args, kwargs)))


def _outputs_differ(probe: LoopProbe, args: tuple, kwargs: dict) -> bool:
    """Whether the model's output on ``args`` differs between train and eval mode (one seed); every module's
    mode, every buffer (running statistics, counters) and the random state are put back; False if it raises."""
    modes = module_modes(probe.model)
    buffers = [(b, b.detach().clone()) for b in probe.model.buffers()]
    outs = []
    probe.reading = True
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for training in (True, False):
                probe.model.train(training)
                torch.manual_seed(0)
                outs.append(probe.model(*args, **kwargs))
    except Exception:  # noqa: BLE001 - a model this reading cannot run is taken as mode-free, as before
        return False
    finally:
        probe.reading = False
        restore_modes(modes)
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)
    a, b = first_tensor((outs[0],), {}), first_tensor((outs[1],), {})
    return a is not None and b is not None and a.shape == b.shape and not torch.equal(a, b)
