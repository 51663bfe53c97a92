"""Pre-flight: a language model's targets. For token-id inputs ``x`` (N, T) and integer targets ``y`` (N, T):

- targets equal to the inputs of a left-to-right model: it learns to copy the token it reads (next-token targets
  are the inputs shifted by one: ``x = seq[:, :-1], y = seq[:, 1:]``); a model that reads the whole sequence (an
  autoencoder over tokens) reconstructs its input by design;
- next-token targets (``y[:, t] == x[:, t + 1]``) read by a model that sees the future: the output at position
  t must not change when the tokens after t do (a causal mask missing or inverted lets it read its target from
  the next input; teacher-forced accuracy is then high and generation fails; Vaswani et al. 2017, section 3.2.3);
- the padding id of the model's embedding (``nn.Embedding(padding_idx=p)``) as a large share of next-token
  targets, with a loss that counts it: the model learns to predict padding (a tagger's targets are tags, whose
  0 may be a real class: not read).

``doctor.watch`` reads the first of these on the loop's own steps: integer targets equal to a token-id input of
the training forward, for a model that, run again at the report, is left to right (``loop: next-token targets``).
Targets handed over with a mask (``y=(tokens, mask)``, a batch dict) are read by their integer part(s); a loss
that shifts the targets itself (``logits[:, :-1]`` against ``labels[:, 1:]``, with labels = input ids) is told
apart by the gradient it sends to the outputs, which pulls each position towards the next token.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import global_rngs
from trainwell.doctor import outputs as O
from trainwell.doctor.echoed_targets import forward_runner, quietly
from trainwell.doctor.inputs import Inputs, call, fields
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "next-token targets"
_MOVED = 1e-4  # an output moved: its largest change over its largest magnitude


def _token_ids(x: torch.Tensor | Inputs, y: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The input tensors of integer token ids with the targets' (N, T) shape (a seq2seq model's source and its
    decoder's input may both have it)."""
    return [(name, t) for name, t in fields(x) if not t.is_floating_point() and t.dtype != torch.bool and
            t.dim() == 2 and t.shape == y.shape]


def _shifted(ids: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether ``y`` is ``ids`` shifted by one (``y[:, t] == ids[:, t + 1]``) on 95% of the positions the loss
    reads (targets < 0 are ignored ones: padding, a prompt)."""
    read = y[:, :-1] >= 0
    return bool(read.any()) and float((y[:, :-1] == ids[:, 1:])[read].float().mean()) >= 0.95


def sequence_targets(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                     out=None) -> Verdict | None:
    """A fail (or warning for padding) when a language model's targets are wrong for it; None when the data is
    not token ids with per-position targets, or nothing is wrong. ``out``: the model's output on ``x`` (the
    loss is probed in its shape), if known."""
    if y.is_floating_point() or y.dim() != 2 or y.shape[1] < 2:
        return None
    for name, ids in _token_ids(x, y):
        if torch.equal(ids, y):
            if _reads_the_future(model, x, name, ids) is not None:
                return None  # it reads the whole sequence: an autoencoder over tokens reconstructs its input
            if _shifts_inside(model, x, name, ids):
                return None  # it reads the tokens before each position only: the shift is its own
            return Verdict(NAME, "fail", "the targets equal the inputs, token for token, for a left-to-right model",
                           "the next token at each position", "the model learns to copy the token it reads: shift "
                           "the targets by one (x = seq[:, :-1], y = seq[:, 1:])")
        if _shifted(ids, y):  # next-token targets (a language model, or a seq2seq decoder's teacher forcing)
            return _reads_the_future(model, x, name, ids) or _padding_counted(model, y, loss_fn, out)
    return None


def _runner(model: nn.Module, batch: torch.Tensor | Inputs, name: str) -> Callable[[torch.Tensor], object]:
    """``run(rows)``: the model's eval-mode output on ``batch`` with ``rows`` in place of its input ``name``."""

    def run(rows: torch.Tensor):
        if isinstance(batch, Inputs):
            field = dict(batch.items())[name]
            other = batch.map(lambda v: rows if v is field else v)
        else:
            other = rows
        with kept_modes(model):
            model.eval()
            return call(model, other)

    return run


def _reads_the_future(model: nn.Module, x: torch.Tensor | Inputs, name: str, ids: torch.Tensor) -> Verdict | None:
    """Change the tokens after position t of a few sequences: the outputs at positions up to t must not move."""
    n, t = min(len(ids), 8), ids.shape[1] // 2
    run = _runner(model, x[:n], name)

    reads = position_reads(run, ids[:n], t + 1)
    if reads is None or reads[0] <= _MOVED:
        return None
    return Verdict(NAME, "fail", f"the outputs at positions 0..{t} change (by {reads[0]:.2g} of their scale) when "
                   f"only the tokens after position {t} change", "each position's output depends on the tokens up "
                   "to it", "the model reads later tokens, and with next-token targets its answer is in its input: "
                   "a causal mask is missing or inverted (in torch, True / -inf marks what a position may NOT "
                   "attend to: pass nn.Transformer.generate_square_subsequent_mask(T) as the mask; is_causal=True "
                   "is only a hint given beside it)")


def _shifts_inside(model: nn.Module, x: torch.Tensor | Inputs, name: str, ids: torch.Tensor) -> bool:
    """Whether the output at a position does not move when the token at that position (and those after it)
    change: the model feeds each position the tokens before it (a decoder that shifts its targets right itself,
    ``torch.cat([bos, labels[:, :-1]], 1)`` as Hugging Face's ``shift_tokens_right`` does; a pointer network
    fed the element it pointed to last), so targets equal to that input are no copy."""
    n, t = min(len(ids), 8), ids.shape[1] // 2
    run = _runner(model, x[:n], name)

    reads = position_reads(run, ids[:n], t)
    return reads is not None and reads[1] <= _MOVED


def _changed_from(ids: torch.Tensor, start: int) -> torch.Tensor:
    """``ids`` with the tokens from position ``start`` on replaced by others of the ids' range (the one at
    ``start`` always differs)."""
    changed = ids.clone()
    offsets = 1 + torch.arange(ids.shape[1] - start, device=ids.device)
    changed[:, start:] = (changed[:, start:] + offsets) % max(int(ids.max()) + 1, 2)
    return changed


def position_reads(run: Callable[[torch.Tensor], object], ids: torch.Tensor,
                   start: int) -> tuple[float, float, int | None] | None:
    """The model's output on ``ids`` against its output with the tokens from position ``start`` on changed
    (``run(rows)``: the output with ``rows`` in place of the ids): (the change of the outputs before ``start``,
    the change of the output at ``start``, each over its scale; the width of the class axis beside the position
    axis, None if the output has more axes). None when the model raises or its output has no position axis of
    the ids' length. Both runs start from the same state of the global random generators (which they leave as
    they were): a forward that draws (teacher forcing with probability p, a coin per step) makes the same draws
    on both, so only the changed tokens can move its outputs."""
    devices = [ids.device.index or 0] if ids.device.type == "cuda" else []
    try:
        with torch.no_grad():
            with global_rngs.kept(devices):
                before = O.logits(run(ids))
            with global_rngs.kept(devices):
                after = O.logits(run(_changed_from(ids, start)))
    except Exception:  # noqa: BLE001 - a model this probe cannot run gets no verdict from it
        return None
    if not isinstance(before, torch.Tensor) or not isinstance(after, torch.Tensor) or before.shape != after.shape \
            or before.dim() < 3 or not before.is_floating_point():
        return None
    length = ids.shape[1]
    axis = 1 if before.shape[1] == length else 2 if before.shape[2] == length else None
    if axis is None:
        return None
    width = before.shape[3 - axis] if before.dim() == 3 else None
    return (O.relative_change(before.narrow(axis, 0, start), after.narrow(axis, 0, start)),
            O.relative_change(before.narrow(axis, start, 1), after.narrow(axis, start, 1)), width)


def _padding_counted(model: nn.Module, y: torch.Tensor, loss_fn: Callable, out=None) -> Verdict | None:
    """The embedding's padding id as >= 10% of the targets, and a loss that does not ignore it (a loss the
    probe cannot run on gets no verdict)."""
    pads = {m.padding_idx for m in model.modules() if isinstance(m, nn.Embedding) and m.padding_idx is not None}
    if len(pads) != 1:
        return None
    pad = pads.pop()
    share = float((y == pad).float().mean())
    ignored = getattr(loss_fn, "ignore_index", None)
    if share < 0.1 or ignored == pad or _ignores(loss_fn, y, pad, out) is not False:
        return None
    return Verdict(NAME, "warn", f"{share:.0%} of the targets are the padding id {pad} (the embedding's padding_idx), "
                   "and the loss counts them", "padding positions left out of the loss",
                   f"the model learns to predict padding and the loss and accuracy are mostly about it: pass "
                   f"ignore_index={pad} to the loss (nn.CrossEntropyLoss(ignore_index={pad}))")


def _ignores(loss_fn: Callable, y: torch.Tensor, pad: int, out=None) -> bool | None:
    """Whether a loss function gives no value (NaN, or exactly 0) on targets that are all ``pad``: it ignores
    them. Probed with uniform scores in the model's own output (``out``: its shape and structure, so that a loss
    written for its vocabulary, ``out.reshape(-1, V)``, runs), else in the (N, T, C) and (N, C, T) layouts with
    C the output width; None (unknown) when no probe runs."""
    targets = torch.full_like(y, pad)
    for scores in _uniform_scores(y, pad, out):
        try:
            with torch.no_grad():
                value = loss_fn(scores, targets)
        except Exception:  # noqa: BLE001 - a layout the loss does not take
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            v = float(value)
            return v != v or v == 0.0
    return None


def _uniform_scores(y: torch.Tensor, pad: int, out=None) -> list:
    """All-zero scores for ``y``'s targets: the model's output with its logits zeroed, then the two sequence
    layouts with the output's width (the targets' largest id + 1 when the output is unknown)."""
    scores = O.logits(out) if out is not None else None
    probes = []
    if scores is not None and scores.is_floating_point():
        probes.append(O.replace_logits(out, torch.zeros_like(scores)))
    width = scores.shape[-1] if scores is not None and scores.dim() == 3 and scores.shape[1] == y.shape[1] else \
        scores.shape[1] if scores is not None and scores.dim() == 3 else max(int(y.max()) + 1, pad + 1, 2)
    n, length = y.shape
    return probes + [torch.zeros(n, length, width), torch.zeros(n, width, length)]


def echoed_tokens(tensors: list[torch.Tensor], y: torch.Tensor) -> int | None:
    """``doctor.watch``: the index of the first integer tensor among a forward's ``tensors`` equal to token-id
    targets ``y`` (N, T), token for token, or None; targets of one id throughout are no reading."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool or y.dim() != 2 or \
            y.shape[1] < 2 or bool((y == y.reshape(-1)[0]).all()):
        return None
    return next((i for i, t in enumerate(tensors) if isinstance(t, torch.Tensor) and not t.is_floating_point()
                 and t.dtype != torch.bool and t.shape == y.shape and t.device == y.device and torch.equal(t, y)),
                None)


def label_parts(y) -> list[torch.Tensor]:
    """The token-label tensors of ``w.step``'s ``y``: ``y`` itself when it is a tensor; of a tuple, list or dict of
    targets, its integer parts that are not masks (bool, or integers that are all 0 or 1)."""
    if isinstance(y, torch.Tensor):
        return [y]
    parts = y.values() if isinstance(y, dict) else y if isinstance(y, tuple | list) else ()
    return [t for t in parts if isinstance(t, torch.Tensor) and not t.is_floating_point() and t.dtype != torch.bool
            and t.numel() and not bool(((t == 0) | (t == 1)).all())]


def shifted_by_the_loss(z: torch.Tensor, g: torch.Tensor, ids: torch.Tensor) -> bool:
    """Whether the gradient ``g`` the loss sent to the outputs ``z`` ((N, T, V), or (N, V, T)) pulls each position
    towards the next of the token targets ``ids`` (N, T): a cross-entropy's gradient has its one negative entry at
    the label, and at the positions the loss reaches that is ``ids[:, t + 1]`` on most of them and more often than
    ``ids[:, t]`` (a loss that shifts the labels itself). False when the layout does not match."""
    if z.dim() != 3 or g is None or g.shape != z.shape:
        return False
    if tuple(z.shape[:2]) != tuple(ids.shape):
        if (z.shape[0], z.shape[2]) != tuple(ids.shape):
            return False
        g = g.transpose(1, 2)
    g, ids = g.detach(), ids.detach().to(g.device)
    label = g.argmin(-1)
    reached = g.abs().amax(-1) > 0
    ahead = reached[:, :-1]
    if not bool(ahead.any()):
        return False
    same = float((label == ids)[reached].float().mean())
    following = float((label[:, :-1] == ids[:, 1:])[ahead].float().mean())
    return following > 0.5 and following > same


def echoed_labels(tensors: list[torch.Tensor], y, scored: tuple | None) -> int | None:
    """``doctor.watch``: the index of the forward input (among ``tensors``) that the token targets in ``y`` (a
    tensor, or the integer parts of a tuple, list or dict, each of which must equal an input) equal, token for
    token; None when none does, or when the observed step's (outputs, gradient) ``scored`` show that the loss
    shifts them itself."""
    parts = label_parts(y)
    indices = [echoed_tokens(tensors, t.detach()) for t in parts]
    if not indices or any(i is None for i in indices):
        return None
    if scored is not None and shifted_by_the_loss(scored[0], scored[1], tensors[indices[0]]):
        return None
    return indices[0]


def loop_copied_tokens(probe, echoes: list[int | None], sample: tuple | None) -> Verdict | None:
    """``doctor.watch``: a fail when the integer targets given to ``w.step(loss, y=y)`` equalled a token-id input
    of the step's training forward on half or more of the observed steps read (``echoes``: the index per step;
    ``sample``: (args, kwargs, index, tensors) of the first such forward) and the model is a left-to-right one
    over a vocabulary: run again at the report, its outputs before position t do not move when the tokens from t
    on change, the output at t does (it reads the token it is asked for), and its class axis covers the ids. A
    model that reads later tokens (an autoencoder or a denoiser over tokens) copies its input by design, one whose
    output at t does not read token t shifts the targets itself: no verdict, nor when the model cannot run."""
    if not echoes or sample is None:
        return None
    args, kwargs, index, tensors = sample
    hits = sum(e == index for e in echoes)
    run = forward_runner(probe.model, args, kwargs, index, tensors)
    if 2 * hits < len(echoes) or run is None:
        return None
    ids, reads = tensors[index].detach(), None
    t = ids.shape[1] // 2
    for n in dict.fromkeys((min(len(ids), 8), len(ids))):  # all rows when another input (a carried state) needs them
        with torch.random.fork_rng(devices=[]):
            reads = quietly(probe, lambda n=n: position_reads(lambda rows: run(rows, n), ids[:n], t))
        if reads is not None:
            break
    if reads is None or reads[0] > _MOVED or reads[1] <= _MOVED or reads[2] is None or reads[2] <= int(ids.max()):
        return None
    which = "input" if len(tensors) == 1 else f"input {index + 1} (of {len(tensors)})"
    return Verdict(f"loop: {NAME}", "fail", f"on {hits} of {len(echoes)} observed steps, the token targets equal "
                   f"the model's {which}, token for token, and its output at position t reads the tokens only up "
                   "to t", "the next token at each position", "a left-to-right model learns to copy the token it "
                   "reads: shift the targets by one (y = x[:, 1:], inputs x[:, :-1])")
