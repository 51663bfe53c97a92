"""Inputs in ``nn.EmbeddingBag``'s flat layout: one 1-D tensor of every example's token ids end to end (N of
them) and the B offsets where each example's bag starts (``model(text, offsets)``, torch's text classification
tutorial), with B targets. The examples are the bags, not the rows of each tensor: a subset of the examples takes
the tokens of the bags it keeps and gives them offsets of their own (from 0, a running sum of the kept bags'
lengths). A tensor of N values beside the tokens (``per_sample_weights``) is sliced as the tokens are, one of B
values as the bags are.

Example:
    >>> import torch
    >>> from torch import nn
    >>> bag = nn.EmbeddingBag(10, 3)
    >>> x = bag_inputs((torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2, 3])), bag)
    >>> len(x), x[1:].fields
    (3, (tensor([3, 4, 5]), tensor([0, 1])))
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, _takes_whole, as_inputs


class Bags(Inputs):
    """Inputs whose examples are the bags that ``offsets`` (the field at key or position ``at``) cuts from its
    token fields (``tokens``: the keys or positions of the tensors of N values); ``last``: the offsets end with N
    (``include_last_offset=True``). Indexing (an int, a slice or an index tensor) keeps whole bags."""

    def __init__(self, fields: tuple | dict, whole: bool, at, tokens: frozenset, last: bool):
        super().__init__(fields, whole)
        self.at, self.tokens, self.last = at, tokens, last

    def _offsets(self) -> torch.Tensor:
        return self.fields[self.at]

    def __len__(self) -> int:
        return len(self._offsets()) - int(self.last)

    def map(self, fn) -> Bags:
        mapped = super().map(fn)
        return Bags(mapped.fields, self.whole, self.at, self.tokens, self.last)

    def __getitem__(self, index) -> Bags:
        offsets, n = self._offsets(), len(self)
        size = len(self.fields[next(iter(self.tokens))])
        keep = torch.arange(n)[index].reshape(-1)
        starts = offsets[:n]
        ends = torch.cat([offsets[1:n], offsets.new_tensor([size])]) if not self.last else offsets[1:]
        lengths = (ends - starts)[keep]
        rows = torch.cat([torch.arange(int(starts[i]), int(ends[i])) for i in keep.tolist()]) if len(keep) else \
            torch.zeros(0, dtype=torch.long)
        new = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
        new = new if self.last else new[:-1]
        keys = self.fields.keys() if isinstance(self.fields, dict) else range(len(self.fields))
        picked = {k: new.to(offsets.dtype) if k == self.at else
                  self.fields[k][rows.to(self.fields[k].device)] if k in self.tokens else
                  self.fields[k][keep.to(self.fields[k].device)] for k in keys}
        fields = picked if isinstance(self.fields, dict) else tuple(picked[k] for k in keys)
        return Bags(fields, self.whole, self.at, self.tokens, self.last)


    def bag_of_rows(self, t: torch.Tensor) -> torch.Tensor | None:
        """For one of the token fields (by identity): the bag each of its rows belongs to; None for another
        tensor (its rows are the bags)."""
        keys = self.fields.keys() if isinstance(self.fields, dict) else range(len(self.fields))
        if not any(self.fields[k] is t for k in keys if k in self.tokens):
            return None
        offsets, n = self._offsets(), len(self)
        ends = offsets[1:] if self.last else torch.cat([offsets[1:n], offsets.new_tensor([len(t)])])
        return torch.repeat_interleave(torch.arange(n, device=t.device), (ends - offsets[:n]).to(t.device))


def _last_offset(model: nn.Module | None) -> bool | None:
    """``include_last_offset`` of the model's ``nn.EmbeddingBag`` modules (None: it has none, or they differ)."""
    flags = {m.include_last_offset for m in (model.modules() if model is not None else ())
             if isinstance(m, nn.EmbeddingBag)}
    return flags.pop() if len(flags) == 1 else None


def bag_inputs(x, model: nn.Module | None) -> Bags | None:
    """``x`` as :class:`Bags` when the model holds an ``nn.EmbeddingBag`` and ``x`` holds one 1-D integer tensor
    of offsets (from 0, never falling, within the tokens) and 1-D integer tokens longer than there are bags; None
    otherwise (the tensors then hold the examples along their first dimension, as for any model)."""
    last = _last_offset(model)
    if last is None or not isinstance(x, (tuple, list, dict)) or not x or \
            isinstance(x, dict) and not all(isinstance(k, str) for k in x):
        return None
    fields = dict(x) if isinstance(x, dict) else tuple(x)
    keys = list(fields.keys()) if isinstance(fields, dict) else list(range(len(fields)))
    if not all(isinstance(fields[k], torch.Tensor) and fields[k].dim() >= 1 for k in keys):
        return None
    ints = [k for k in keys if fields[k].dim() == 1 and not fields[k].is_floating_point() and
            fields[k].dtype != torch.bool and not fields[k].is_complex()]
    for at in ints:
        offsets = fields[at]
        for flat in ints:
            size = len(fields[flat])
            if flat == at or size < len(offsets) - int(last) or len(offsets) < 2 + int(last):
                continue
            if int(offsets[0]) != 0 or not bool((offsets[1:] >= offsets[:-1]).all()) or int(offsets[-1]) > size or \
                    last and int(offsets[-1]) != size:
                continue
            tokens = frozenset(k for k in keys if k != at and len(fields[k]) == size)
            if size == len(offsets) - int(last) and not bool((offsets != torch.arange(len(offsets))).any()):
                return None  # one token a bag: the rows are the examples anyway
            return Bags(fields, _takes_whole(model, fields), at, tokens, last)
    return None


#: how the offsets of B bags are built from the bags' lengths
RUNNING_SUM = "offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths[:-1]]).cumsum(0)"


def _offsets_hint(x, model: nn.Module | None) -> str:
    """What is wrong with the offsets of an ``nn.EmbeddingBag`` model whose inputs are not read as bags: they
    do not start at 0 but end at the number of tokens (the running sum of every length, each bag shifted by one),
    or they fall (the lengths themselves); empty when neither reads so."""
    if _last_offset(model) is None or not isinstance(x, (tuple, list, dict)):
        return ""
    ints = [t for t in (x.values() if isinstance(x, dict) else x) if isinstance(t, torch.Tensor) and t.dim() == 1
            and not t.is_floating_point() and t.dtype != torch.bool and len(t) >= 2]
    if len(ints) < 2:
        return ""
    tokens = max(ints, key=len)
    offsets = min(ints, key=len)
    if len(offsets) == len(tokens):
        return ""
    if int(offsets[0]) != 0 and bool((offsets[1:] >= offsets[:-1]).all()) and int(offsets[-1]) == len(tokens):
        return ("; the offsets are the running sum of every bag's length: they start at the first bag's end, so each "
                f"bag gets the next one's tokens (torch.nn.EmbeddingBag raises on offsets[0] != 0): {RUNNING_SUM}")
    if not bool((offsets[1:] >= offsets[:-1]).all()):
        return ("; the offsets fall, as the bags' lengths do: nn.EmbeddingBag's offsets are where each bag starts "
                f"in the flat tokens, the running sum of the lengths before it: {RUNNING_SUM}")
    return ""


def as_bag_inputs(x, model: nn.Module | None):
    """``x`` as the checks take it: :class:`Bags` for an ``nn.EmbeddingBag`` model's (tokens, offsets), else as
    :func:`~trainwell.doctor.inputs.as_inputs` gives it, its error naming offsets built wrong where they read so."""
    bags = bag_inputs(x, model)
    if bags is not None:
        return bags
    try:
        return as_inputs(x, model)
    except ValueError as e:
        hint = _offsets_hint(x, model)
        if hint:
            raise ValueError(f"{e}{hint}") from None
        raise


def extra_bag_hint(x, y) -> str:
    """The reason ``x`` holds one bag more than ``y`` holds targets when its offsets end at the number of tokens
    (the running sum took every length, the last too, beside a leading 0): empty otherwise."""
    if not isinstance(x, Bags) or x.last or len(x) != len(y) + 1 or \
            int(x._offsets()[-1]) != len(x.fields[next(iter(x.tokens))]):
        return ""
    return ("; the offsets hold one more entry than there are bags, the last one the number of tokens (the running "
            f"sum of every length beside a leading 0): give the start of each bag, {RUNNING_SUM}, or build "
            "the nn.EmbeddingBag with include_last_offset=True")
