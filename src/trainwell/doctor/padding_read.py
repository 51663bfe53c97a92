"""Pre-flight: a sequence model whose output reads its padding. Sequences of different lengths are padded to one
length with the embedding's ``padding_idx``; a model that pools over every position (``h.mean(1)``, a max over
time) or takes a recurrent net's last state after the padding gives a sequence a different output depending on
how much padding its batch happened to need. Appending more padding to a few sequences must leave each one's
output as it was: the pooled mean is then taken over the real tokens only (a mask), and a recurrent net reads
packed sequences (``nn.utils.rnn.pack_padded_sequence``) or the state at each sequence's last real token.

The probe appends the embedding's ``padding_idx``, so it first asks whether that is the id the batch pads with:
the id that ends at least a quarter of the sequences and occurs only in such trailing runs. When the batch pads
with another id, ``padding_idx`` names the wrong token (a real one, whose embedding is then held at zero and never
learns, when it occurs inside sequences): the verdict says that, not that the model reads its padding.
``doctor.watch`` reads the embedding's ``padding_idx`` against the first training batch it observes
(:func:`loop_padding_idx`)."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call, fields
from trainwell.doctor.step_readings import forward_tensors
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "padding"


def _padding_id(model: nn.Module) -> int | None:
    """The one ``padding_idx`` of the model's embeddings (None: none, or several)."""
    pads = {m.padding_idx for m in model.modules() if isinstance(m, nn.Embedding) and m.padding_idx is not None}
    return pads.pop() if len(pads) == 1 else None


def _extend(t: torch.Tensor, ids: torch.Tensor, pad: int, extra: int) -> torch.Tensor | None:
    """``t`` (a field of the batch) with ``extra`` padding positions appended: the token ids with the padding id,
    a mask beside them (same (n, T) shape) with the value it holds at the padded positions; other fields as they
    are. None when a mask's value at padding is not one value (it cannot be extended)."""
    if t is ids:
        return torch.cat([ids, torch.full((len(ids), extra), pad, dtype=ids.dtype)], 1)
    if t.shape != ids.shape:
        return t
    at_pad, at_token = t[ids == pad], t[ids != pad]
    if at_pad.numel() == 0 or not bool((at_pad == at_pad[0]).all()) or bool((at_token == at_pad[0]).any()):
        return None
    return torch.cat([t, at_pad[0].expand(len(t), extra)], 1)


#: the id that pads must end at least this share of the batch's sequences
TRAILING_SHARE = 0.25


def _data_padding(ids: torch.Tensor) -> tuple[int, int] | None:
    """The id the (n, T) token ids pad with on the right, and how many sequences end with it: the last column's
    most frequent id, when it ends a quarter of the sequences or more and occurs nowhere but in the runs that end
    them; else None."""
    if len(ids) < 4 or ids.shape[1] < 2 or len(torch.unique(ids)) <= 2:  # a 0/1 attention mask is no token ids
        return None
    last = ids[:, -1]
    value = int(torch.mode(last).values)
    count = int((last == value).sum())
    if count < TRAILING_SHARE * len(ids):
        return None
    hit = ids == value
    trailing = hit.flip(1).int().cumprod(1).flip(1).bool()  # the run of the id that ends each row
    runs = trailing.sum(1)[trailing.any(1)]
    # padding fills the sequences up to the longest one: runs of several lengths (not a last position's id)
    if not bool((hit == trailing).all()) or len(torch.unique(runs)) < 2:
        return None
    return value, count


def _wrong_padding_idx(model: nn.Module, x: torch.Tensor | Inputs, given: int) -> Verdict | None:
    """A warning when a field of token ids in the batch pads with an id other than the embedding's
    ``padding_idx`` and none pads with it; None otherwise."""
    candidates = [t for _, t in fields(x) if not t.is_floating_point() and t.dtype != torch.bool and t.dim() == 2]
    padded = [(t, found) for t in candidates if (found := _data_padding(t)) is not None]
    if not padded or any(found[0] == given for _, found in padded):
        return None
    ids, (pad, ends) = padded[0]
    inside = int((ids == given).any(1).sum())
    names = sorted(n for n, m in model.named_modules() if isinstance(m, nn.Embedding) and m.padding_idx == given)
    where = f"nn.Embedding{f' {names[0]!r}' if names else ''}"
    held = (f"; id {given} occurs in {inside} of the {len(ids)} sequences as a real token: its embedding is held at "
            "zero and never learns" if inside else f"; id {given} does not occur in the batch")
    return Verdict(NAME, "warn", f"{where} has padding_idx={given}, but the batch pads with id {pad} (it ends {ends} "
                   f"of {len(ids)} sequences and occurs nowhere else){held}",
                   "padding_idx = the id the data pads with",
                   f"set padding_idx={pad} (the id your collate function or tokenizer pads with): the padding's "
                   f"embedding is then zero and gets no gradient, and a mask built as ids != {pad} covers it")


def loop_padding_idx(model: nn.Module, forward: tuple | None) -> Verdict | None:
    """``doctor.watch``'s reading of :func:`_wrong_padding_idx` on the first observed training forward's token ids
    (``forward``: its (args, kwargs)); None without an embedding's ``padding_idx`` or such a forward."""
    pad = _padding_id(model)
    tensors = [t.detach().cpu() for t in forward_tensors(*forward)] if forward is not None else []
    if pad is None or not tensors:
        return None
    verdict = _wrong_padding_idx(model, Inputs(tuple(tensors)), pad)
    return None if verdict is None else Verdict("loop: " + NAME, verdict.status, verdict.value, verdict.expected,
                                                verdict.advice)


def _zero_frame_padding(t: torch.Tensor) -> torch.Tensor | None:
    """Where a batch of (n, T, F) float sequences is padded with all-zero frames after each sequence's end (an
    (n, T) mask), when at least a quarter of them end with such a run, the runs have several lengths, and no
    all-zero frame occurs anywhere else (continuous features are never exactly 0 on every feature); else None."""
    if t.dim() != 3 or len(t) < 4 or t.shape[1] < 2 or t.shape[2] < 1:
        return None
    hit = (t == 0).all(-1)
    trailing = hit.flip(1).int().cumprod(1).flip(1).bool()
    runs = trailing.sum(1)[trailing.any(1)]
    if int(hit[:, -1].sum()) < TRAILING_SHARE * len(t) or not bool((hit == trailing).all()) or \
            len(torch.unique(runs)) < 2 or bool(trailing.all(1).any()):
        return None
    return trailing


def _appended(t: torch.Tensor, at: torch.Tensor, extra: int) -> torch.Tensor | None:
    """A field of the batch with ``extra`` padded positions appended: the (n, T, F) sequences padded at ``at``
    (their (n, T) mask) with zero frames, a field of shape (n, T) (a mask beside them) with the value it holds at
    the padding; other fields (each sequence's length) as they are. None when a mask's value at padding is not
    one value."""
    if t.dim() == 3 and t.shape[:2] == at.shape and t.is_floating_point():
        return torch.cat([t, t.new_zeros(len(t), extra, t.shape[2])], 1)
    if t.shape != at.shape:
        return t
    at_pad, at_step = t[at], t[~at]
    if at_pad.numel() == 0 or not bool((at_pad == at_pad[0]).all()) or bool((at_step == at_pad[0]).any()):
        return None
    return torch.cat([t, at_pad[0].expand(len(t), extra)], 1)


def _frames_read(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning when appending all-zero frames to 8 float sequences padded with them changes their outputs (a
    recurrent net's ``output[:, -1]`` of the padded batch, a mean over every step); None when the batch holds no
    such padding or the model cannot run on longer sequences."""
    named = [(name, t, at) for name, t in fields(x) if t.is_floating_point()
             and (at := _zero_frame_padding(t)) is not None]
    if not named:
        return None
    name, _, _ = named[0]
    batch = x[:8]
    seqs = dict(fields(batch))[name] if isinstance(batch, Inputs) else batch
    at = (seqs == 0).all(-1).flip(1).int().cumprod(1).flip(1).bool()
    if not bool(at.any()):
        return None
    extra = seqs.shape[1] // 2 + 1
    longer = batch.map(lambda t: _appended(t, at, extra)) if isinstance(batch, Inputs) else \
        _appended(batch, at, extra)
    if longer is None or isinstance(longer, Inputs) and any(v is None for v in longer.tensors()):
        return None
    moved = _moved(model, batch, longer)
    if moved is None:
        return None
    return Verdict(NAME, "warn", f"appending {extra} all-zero frames (the padding after each sequence's last step) "
                   f"to {len(seqs)} sequences changes their outputs by {moved:.2g} of their scale",
                   "the same output however much padding follows", READS_PADDING)


def _moved(model: nn.Module, batch, longer) -> float | None:
    """How much the model's outputs on ``batch`` move when it is given ``longer`` instead (relative to their
    scale), in eval mode; None when they do not (1e-4 or less) or cannot be compared."""
    try:
        with kept_modes(model), torch.no_grad():
            model.eval()
            before, after = O.logits(call(model, batch)), O.logits(call(model, longer))
    except Exception:  # noqa: BLE001 - a model this probe cannot run on longer sequences gets no verdict from it
        return None
    if before is None or after is None or before.shape != after.shape:
        return None
    moved = O.relative_change(before, after)
    return moved if moved > 1e-4 else None


#: what a model that reads its padding is told
READS_PADDING = ("the model reads its padding, so a sequence's prediction depends on its batch's longest sequence: "
                 "pool over the real tokens only (sum of h * mask over the mask's count), give a recurrent net "
                 "packed sequences (nn.utils.rnn.pack_padded_sequence) or its state (or output) at the last real "
                 "step, and pass a Transformer src_key_padding_mask")


def padding_read(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning when appending padding to 8 sequences of the batch changes their outputs, or when the batch pads
    with another id than the embedding's ``padding_idx`` (:func:`_wrong_padding_idx`); None when the model has no
    embedding with a padding id, the batch holds no trailing padding, the outputs are per position, or the model
    cannot run on longer sequences (a fixed positional table)."""
    pad = _padding_id(model)
    if pad is None:
        return _frames_read(model, x) or _unmarked_padding_read(model, x)
    wrong = _wrong_padding_idx(model, x, pad)
    if wrong is not None:
        return wrong
    return _tokens_read(model, x, pad)


def _unmarked_padding_read(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """The same probe for a model whose embeddings have no ``padding_idx``: the id the batch pads with is read from
    the data (:func:`_data_padding`: it ends a quarter of the sequences or more, in runs of several lengths, and
    occurs nowhere else); its embedding row is then learned like a real token's, and a model that pools over it
    reads it. None when no field of token ids pads that way or the outputs do not move."""
    if not any(isinstance(m, nn.Embedding) for m in model.modules()):
        return None
    candidates = [t for _, t in fields(x) if not t.is_floating_point() and t.dtype != torch.bool and t.dim() == 2]
    found = next((f for t in candidates if (f := _data_padding(t)) is not None), None)
    if found is None:
        return None
    verdict = _tokens_read(model, x, found[0])
    if verdict is None:
        return None
    return Verdict(verdict.check, verdict.status, verdict.value, verdict.expected,
                   f"{verdict.advice}; no nn.Embedding has padding_idx={found[0]}, so the padding's row is learned "
                   f"like a real token's: give it padding_idx={found[0]}")


def _tokens_read(model: nn.Module, x: torch.Tensor | Inputs, pad: int) -> Verdict | None:
    """A warning when appending the padding id ``pad`` to 8 sequences of token ids changes their outputs."""
    named = [(name, t) for name, t in fields(x) if not t.is_floating_point() and t.dtype != torch.bool and
             t.dim() == 2 and bool((t[:, -1] == pad).any())]
    if not named:
        return None
    name, _ = named[0]
    batch = x[:8]
    ids = dict(fields(batch))[name] if isinstance(batch, Inputs) else batch
    extra = ids.shape[1] // 2 + 1
    if isinstance(batch, Inputs):
        parts = batch.map(lambda t: _extend(t, ids, pad, extra))
        if any(v is None for v in parts.tensors()):
            return None
        longer = parts
    else:
        longer = _extend(ids, ids, pad, extra)
    moved = _moved(model, batch, longer)
    if moved is None:
        return None
    return Verdict(NAME, "warn", f"appending {extra} padding tokens (id {pad}) to {len(ids)} sequences changes their "
                   f"outputs by {moved:.2g} of their scale", "the same output however much padding follows",
                   READS_PADDING)
