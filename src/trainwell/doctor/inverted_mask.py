"""A key padding mask that marks the real tokens instead of the padding.

torch's attention reads ``key_padding_mask`` (``src_key_padding_mask`` of a Transformer encoder layer or encoder,
``tgt_``/``memory_key_padding_mask`` of a decoder) as True = *ignore this key*. A mask built as ``ids != pad``
(True = keep, as a Hugging Face ``attention_mask`` means it) hides every real token and leaves attention only the
padding: each position mixes the padding's vectors, whatever the sequence says, and a sequence with no padding has
every key hidden, whose softmax is NaN in torch's fused eval-mode path. The mask is read as the attention layers
receive it, on a few examples: the keys it hides are exactly the positions whose token is not the padding id (the
embedding's ``padding_idx``, or the id that ends a quarter of the sequences and occurs nowhere else), also when
the model adds a few tokens of its own (a CLS token) whose keys the mask leaves visible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call, fields
from trainwell.doctor.padding_read import _data_padding, _padding_id
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "key padding mask"
#: the modules whose forward takes a key padding mask, and the keyword(s) it comes by
_MASKED = ((nn.MultiheadAttention, ("key_padding_mask",)),
           (nn.TransformerEncoderLayer, ("src_key_padding_mask",)),
           (nn.TransformerEncoder, ("src_key_padding_mask",)),
           (nn.TransformerDecoderLayer, ("tgt_key_padding_mask", "memory_key_padding_mask")),
           (nn.TransformerDecoder, ("tgt_key_padding_mask", "memory_key_padding_mask")))


def _hidden(mask) -> torch.Tensor | None:
    """The keys a key padding mask hides: True of a boolean mask, -inf of a float one."""
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        return None
    if mask.dtype == torch.bool:
        return mask
    return torch.isneginf(mask) if mask.is_floating_point() else None


#: the most special tokens (a CLS token, a register, an end token) a model may add to its input's positions
_ADDED = 4


def _hides_real_tokens(hidden: torch.Tensor, ids: torch.Tensor, pad: int) -> bool:
    """Whether a mask's hidden keys are exactly the real tokens of ``ids``: over its positions, or over the input's
    positions among up to :data:`_ADDED` tokens the model adds before or after them (a CLS token), which the mask
    leaves visible."""
    real = ids != pad
    extra = hidden.shape[-1] - ids.shape[-1] if hidden.dim() == 2 and len(hidden) == len(ids) else -1
    if not 0 <= extra <= _ADDED:
        return False
    for start in range(extra + 1):
        inside = hidden[:, start:start + ids.shape[-1]]
        if torch.equal(inside, real) and not bool(hidden[:, :start].any()) and \
                not bool(hidden[:, start + ids.shape[-1]:].any()):
            return True
    return False


def masks_given(model: nn.Module, forward: Callable[[], object]) -> list[tuple[str, torch.Tensor]]:
    """(module name, the keys hidden) for each key padding mask the attention modules of ``model`` receive in one
    eval-mode run of ``forward()``; empty when there are none or it cannot run."""
    seen: list[tuple[str, torch.Tensor]] = []

    def read(name: str, keys: tuple, module, args, kwargs) -> None:
        given = [kwargs.get(k) for k in keys]
        if isinstance(module, nn.MultiheadAttention) and len(args) > 3:
            given.append(args[3])
        for mask in given:
            hidden = _hidden(mask)
            if hidden is not None:
                seen.append((name, hidden.detach()))

    hooks = [m.register_forward_pre_hook(lambda mod, args, kwargs, name=name, keys=keys: read(name, keys, mod, args,
                                                                                                 kwargs),
                                         with_kwargs=True)
             for name, m in model.named_modules() for kind, keys in _MASKED if isinstance(m, kind)]
    if not hooks:
        return []
    try:
        with kept_modes(model), torch.no_grad():
            model.eval()
            forward()
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return []
    finally:
        for h in hooks:
            h.remove()
    return seen


def inverted_masks(model: nn.Module, x: torch.Tensor | Inputs, forward: Callable[[], object]) -> Verdict | None:
    """A fail when a key padding mask the model's attention receives on ``forward()`` (the model run on ``x``)
    hides exactly the real tokens of a field of padded token ids in ``x``; None otherwise."""
    pad = _padding_id(model)
    ids = [t for _, t in fields(x) if not t.is_floating_point() and t.dtype != torch.bool and t.dim() == 2]
    padded = [(t, pad if pad is not None else (_data_padding(t) or (None,))[0]) for t in ids]
    padded = [(t, p) for t, p in padded if p is not None and bool((t == p).any()) and bool((t != p).any())]
    if not padded:
        return None
    for name, hidden in masks_given(model, forward):
        for t, p in padded:
            if _hides_real_tokens(hidden, t, p):
                where = f"'{name}'" if name else "the model"
                return Verdict(NAME, "fail", f"the key padding mask {where} receives hides the {int((t != p).sum())} "
                               f"real tokens of {len(t)} sequences and leaves their {int((t == p).sum())} padding "
                               f"positions (id {p}) to attention: torch reads True as ignore",
                               "True on the padding positions",
                               f"pass the padding as True: src_key_padding_mask = ids == {p} (or ~attention_mask "
                               "for a mask that is True or 1 on the real tokens); as given, attention reads only "
                               "the padding, and a sequence without padding has every key hidden (NaN)")
    return None


def check_inverted_mask(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """``doctor.check``'s reading on 8 examples of ``x``."""
    head = x[:8]
    return inverted_masks(model, head, lambda: call(model, head))


def loop_inverted_mask(probe, forward: tuple | None) -> Verdict | None:
    """``doctor.watch``'s reading on 8 examples of the first observed training forward (``forward``: its (args,
    kwargs)); None when there are none."""
    if forward is None:
        return None
    args, kwargs = forward
    head = tuple(a[:8] if isinstance(a, torch.Tensor) and a.dim() else a for a in args)
    rows = {k: v[:8] if isinstance(v, torch.Tensor) and v.dim() else v for k, v in kwargs.items()}
    tensors = [a for a in list(head) + list(rows.values()) if isinstance(a, torch.Tensor)]
    if not tensors:
        return None
    probe.reading = True  # the probe's hooks record nothing of this forward
    try:
        verdict = inverted_masks(probe.model, Inputs(tuple(tensors)), lambda: probe.model(*head, **rows))
    finally:
        probe.reading = False
    return None if verdict is None else Verdict("loop: " + NAME, verdict.status, verdict.value, verdict.expected,
                                                verdict.advice)
