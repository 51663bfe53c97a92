"""A bidirectional recurrent layer read at one end only: ``out, _ = lstm(x)`` then ``out[:, -1, :]``.

A bidirectional ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` returns at step t the forward direction's state after
reading x_0..x_t beside the backward direction's after reading x_t..x_{T-1}. At the last step the forward half
summarizes the whole sequence, but the backward half has read one token, the last: a classifier on
``out[:, -1]`` has thrown away the backward direction's summary (it sits at step 0) and pays for a second
direction that tells it one token. The two summaries are the final states ``h_n`` (the last layer's forward
state ``h_n[-2]`` and backward state ``h_n[-1]``), or ``out[:, -1, :H]`` with ``out[:, 0, H:]``.

Read in eval mode on up to 8 examples: the gradient of the summed outputs with respect to each bidirectional
layer's output sequence. A half (forward or backward) that is read at exactly one step, the one where it has read
a single token (the backward half at the last step, the forward half at step 0), while the sequence is 3 steps
or longer, is named. Packed sequences are not read.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "bidirectional read"


def one_token_direction(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning naming the first bidirectional recurrent layer one of whose directions the model reads only at
    the step where that direction has read one token; None when there is none or the reading cannot follow."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.RNNBase) and m.bidirectional]
    if not layers:
        return None
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args, out):
            o = out[0] if isinstance(out, tuple) else out
            if isinstance(o, torch.Tensor) and o.requires_grad and o.dim() == 3:
                seen.setdefault(name, o)
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in layers]
    modes = module_modes(model)
    try:
        model.eval()
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            scores = O.logits(call(model, x[: min(len(x), 8)]))
            if scores is None or not scores.requires_grad or not seen:
                return None
            kept = list(seen.items())
            grads = torch.autograd.grad(scores.float().sum(), [o for _, o in kept], allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    modules = dict(layers)
    for (name, _), g in zip(kept, grads, strict=True):
        if g is None:
            continue
        m = modules[name]
        steps = g.abs().transpose(0, 1) if not m.batch_first else g.abs()  # (B, T, 2H)
        if steps.shape[1] < 3:
            continue
        half = steps.shape[2] // 2
        for direction, part, lone in (("backward", steps[..., half:], steps.shape[1] - 1),
                                      ("forward", steps[..., :half], 0)):
            read = (part.sum((0, 2)) > 0).nonzero().flatten().tolist()
            if read == [lone]:
                return _verdict(name, type(m).__name__, direction, lone, steps.shape[1])
    return None


def _verdict(name: str, kind: str, direction: str, step: int, length: int) -> Verdict:
    where = "out[:, -1]" if step else "out[:, 0]"
    token = "last" if step else "first"
    return Verdict(NAME, "warn", f"the model reads the bidirectional {kind} '{name}' only at step {step} of "
                   f"{length} ({where}), where its {direction} half has read one token, the {token}",
                   "each direction read where it has read the whole sequence",
                   f"the {direction} direction's summary is lost: take the final states, torch.cat([h_n[-2], "
                   "h_n[-1]], 1) (the last layer's forward and backward), or out[:, -1, :H] with out[:, 0, H:] "
                   "(batch_first); pack padded sequences (nn.utils.rnn.pack_padded_sequence) so that each "
                   "direction ends at the sequence's own end")
