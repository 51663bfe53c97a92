"""Rows of a training batch whose inputs differ but whose outputs are the very same numbers: the forward drops
those rows' inputs before they reach the output. ``nn.EmbeddingBag`` given each bag's length as its offset (the
running sum ``cumsum`` forgotten) gives every bag whose offset falls below the one before it no token at all, so
its output is the bias alone, the same for all such rows; a mask that hides every position of a row does the same.
The loss curve then stays flat at any learning rate.

Read on each observed step from the step's one output (N, K) and the forward's tensors whose first dimension is
the batch (the inputs of a row): a row counts when another row of the batch has exactly its output and not its
inputs. Offsets into a flat tensor of ids (``nn.EmbeddingBag(ids, offsets)``: N integers from 0, never falling,
within the ids) give a row the bag they start, not their position: the same document twice in a batch, or two
empty bags, are the same inputs. Of several inputs, a row counts only when it does whichever one is left out (an
id the forward takes for logging and ignores is not a dropped input). Exact float equality of whole output rows
does not happen by chance between inputs that reach the output. Only the first observed step and those after it
that agree are read, so units that a large learning rate kills later in the run (the learning-rate verdict's
cause) are not read as dropped inputs. The forward's other outputs that the loss reaches are read with it: a vector
quantizer's decoder gives every row of one code the same output by design, while the encoder's output beside it,
which its loss term reaches, still tells the rows apart, so their inputs reach an output."""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: inputs reach the outputs"
MIN_ROWS = 8  # a batch with fewer rows is not read
MIN_SHARE = 0.25  # the share of a batch's rows with another row's output and not its inputs
MOST = 2 / 3  # the share of observed steps that must show it, the first one included


def _is_offsets(t: torch.Tensor, rows: int, flat: list[torch.Tensor]) -> bool:
    """Whether ``t`` reads as ``rows`` bag offsets into one of the 1-D tensors ``flat``: integers from 0 that never
    fall and stay within it (the lengths given for offsets fall, and are not read as offsets)."""
    if t.dim() != 1 or len(t) != rows or t.is_floating_point() or t.dtype == torch.bool or int(t[0]) != 0:
        return False
    return bool((t[1:] >= t[:-1]).all()) and any(len(f) >= int(t[-1]) for f in flat)


def _bag_ids(offsets: torch.Tensor, flat: list[torch.Tensor]) -> torch.Tensor:
    """One id per bag for the bags ``offsets`` starts in each tensor of ``flat`` long enough for them (the ids,
    and per-sample weights beside them): equal ids, equal contents."""
    bounds = [*offsets.tolist()]
    keys = []
    for k, start in enumerate(bounds):
        parts = []
        for f in flat:
            if len(f) >= bounds[-1]:
                end = bounds[k + 1] if k + 1 < len(bounds) else len(f)
                parts.append(tuple(f[start:end].double().tolist()))
        keys.append(tuple(parts))
    index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    return torch.tensor([index[key] for key in keys], dtype=torch.double)


def _row_parts(forward, rows: int) -> list[torch.Tensor]:
    """One (rows, k) key per input of the forward whose first dimension is ``rows`` (equal key rows: equal
    inputs), bag offsets and the flat tensors they index read as one key, the bags they start; empty when it took
    none."""
    if forward is None:
        return []
    args, kwargs = forward
    tensors = [t.detach().cpu() for t in [*args, *kwargs.values()] if isinstance(t, torch.Tensor) and
               t.dim() >= 1 and not t.is_complex()]
    flat = [t for t in tensors if t.dim() == 1]
    offsets = [t for t in tensors if _is_offsets(t, rows, flat)]
    if offsets:
        bagged = [f for f in flat if f is not offsets[0] and len(f) >= int(offsets[0][-1])]
        ids = _bag_ids(offsets[0], bagged)
        tensors = [t for t in tensors if t is not offsets[0] and not any(t is f for f in bagged)]
        parts = [ids[:, None]]
    else:
        parts = []
    return parts + [t.reshape(rows, -1).double() for t in tensors if t.shape[0] == rows]


def _share(outputs: torch.Tensor, parts: list[torch.Tensor]) -> float:
    """The share of rows whose output id (``outputs``) another row shares with other inputs (``parts``)."""
    inputs = torch.unique(torch.cat(parts, 1), dim=0, return_inverse=True)[1]
    pairs = torch.stack([outputs, inputs], 1)
    distinct_inputs = torch.bincount(torch.unique(pairs, dim=0)[:, 0], minlength=len(outputs))
    return float((distinct_inputs[outputs] > 1).double().mean())


def tied_share(z: torch.Tensor, forward, others: list[torch.Tensor] = ()) -> float | None:
    """The share of ``z``'s rows that share their output with a row whose inputs (from ``forward``, the step's
    ``(args, kwargs)``) differ; None when it cannot be read (under :data:`MIN_ROWS` rows, no per-row input).
    ``others``: the forward's other outputs the loss reached; a row counts only when they are another row's too. With
    several inputs, the least share over the inputs less any one of them: an input the forward ignores (a row id
    kept for logging) makes every row's inputs differ, and rows with equal features then share an output for the
    right reason; the rows of a dropped input stay tied whichever input is left out."""
    if not isinstance(z, torch.Tensor) or z.dim() not in (1, 2) or len(z) < MIN_ROWS or z.numel() > 2**16 or \
            not z.is_floating_point():
        return None
    parts = _row_parts(forward, len(z))
    if not parts:
        return None
    rows = [t.detach().reshape(len(z), -1).cpu().double() for t in [z, *others] if isinstance(t, torch.Tensor) and
            t.dim() >= 1 and len(t) == len(z) and t.is_floating_point() and t.numel() <= 2**16]
    outputs = torch.unique(torch.cat(rows, 1), dim=0, return_inverse=True)[1]
    if len(parts) == 1:
        return _share(outputs, parts)
    return min(_share(outputs, parts[:i] + parts[i + 1 :]) for i in range(len(parts)))


def tied_rows_verdict(steps: list[dict]) -> Verdict | None:
    """A warn when, from the first observed step on, most observed steps (2/3, three at least) give a quarter of
    the batch's rows or more another row's output for other inputs; None otherwise."""
    shares = [s.get("tied_rows") for s in steps]
    read = [v for v in shares if v is not None]
    if len(read) < 3 or shares[0] is None or shares[0] < MIN_SHARE:
        return None
    tied = [v for v in read if v >= MIN_SHARE]
    if len(tied) < MOST * len(read):
        return None
    median = sorted(tied)[len(tied) // 2]
    return Verdict(NAME, "warn", f"{median:.0%} of each batch's rows get exactly another row's output for other "
                   f"inputs ({len(tied)} of {len(read)} observed steps): the forward drops their inputs",
                   "every row's output computed from its own inputs",
                   "look at what those rows' inputs become inside the forward: nn.EmbeddingBag's offsets are the "
                   "start of each bag, the running sum of the lengths from 0 (torch.cumsum), not the lengths; "
                   "a mask must not hide every position of a row")
