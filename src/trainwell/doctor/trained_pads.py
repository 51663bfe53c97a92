"""A training loop whose per-position loss trains the padding: ``F.cross_entropy(out.view(-1, C), y.view(-1))``
on padded sentences with ``ignore_index`` left at its default -100 while the padded positions' targets hold the
pad tag 0, a real class index. The pads are fitted (an easy class: the input there is the pad id) and counted in
the loss's mean, in training and validation alike, so the validation loss does not expose it: both read lower
than the tokens' loss, the more so the more padding a batch holds, and the accuracy counts the pads.

Read on the observed steps from the gradient the loss sent to the model's scores: at every padded position
(where the input's token ids hold the embedding's ``padding_idx``, or the id the sequences are padded with on
the right) it is exactly zero when the loss leaves the pads out (``ignore_index``, or a per-position loss times
the mask), and not zero when it counts them. The pre-flight reading of the same cause is
:mod:`~trainwell.doctor.padded_loss`'s.
"""

from __future__ import annotations

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.padded_loss import NAME, _padding
from trainwell.doctor.step_readings import forward_tensors
from trainwell.doctor.verdict import Verdict

LEAST = 2  # observed steps read before a verdict
REACHED = 0.9  # the share of padded positions with a gradient, on at least half the steps read


class TrainedPads:
    """Per observed step (:meth:`read`): the padding id, the share of the positions it pads, the share of those
    the loss's gradient reached and their mean gradient over the real tokens'. :meth:`verdict` names the cause."""

    def __init__(self):
        self.reads: list[tuple[int, float, float, float]] = []

    def read(self, model: torch.nn.Module, forward, scored, y) -> None:
        """One observed step: ``forward`` its training forward's (args, kwargs), ``scored`` its (outputs,
        gradient), ``y`` the targets given to ``w.step``."""
        if forward is None or scored is None or len(self.reads) >= 16 or not isinstance(y, torch.Tensor) or \
                y.dim() != 2 or y.is_floating_point() or y.dtype == torch.bool:
            return
        z, g = scored
        z = O.logits(z)
        if not isinstance(z, torch.Tensor) or g is None or g.shape != z.shape or z.dim() != 3:
            return
        n, t = y.shape
        axis = 2 if z.shape[:2] == (n, t) else 1 if z.shape[0] == n and z.shape[2] == t else None
        if axis is None:
            return
        for ids in forward_tensors(*forward):
            if ids.is_floating_point() or ids.dtype == torch.bool or ids.shape != y.shape:
                continue
            found = _padding(model, ids.detach().cpu())
            if found is None:
                return
            pad, padded = found
            size = g.detach().abs().sum(axis).float().cpu()
            at_pad, at_token = size[padded], size[~padded]
            if not at_token.numel() or float(at_token.mean()) <= 0:
                return
            self.reads.append((pad, float(padded.float().mean()), float((at_pad > 0).float().mean()),
                               float(at_pad.mean() / at_token.mean())))
            return

    def verdict(self) -> Verdict | None:
        """A warning when the gradient reached :data:`REACHED` of the padded positions on at least half of the
        steps read (and :data:`LEAST`); None otherwise."""
        hit = [r for r in self.reads if r[2] >= REACHED]
        if len(hit) < LEAST or len(hit) < len(self.reads) / 2:
            return None
        pad, share, _, ratio = hit[0]
        return Verdict(f"loop: {NAME}", "warn", f"the loss trains and counts the {share:.0%} of positions that are "
                       f"padding (input id {pad}) on {len(hit)} of {len(self.reads)} observed steps: their scores "
                       f"get {ratio:.2g}x a real token's gradient", "no gradient at padded positions",
                       "the targets at the pads are a class the loss fits (ignore_index left at its default -100): "
                       "pass ignore_index=<the pad tag> to the loss in training and validation (or set the pads' "
                       "targets to -100); the loss and accuracy then read the real tokens only")
