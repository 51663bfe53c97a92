"""``loop: validation examples``: validation rows that are training rows.

A validation set that is the training set (``val_loader = train_loader``; ``va = tr`` after ``random_split``), or
overlaps it (a validation ``Subset`` of indices the training split also holds; a data set duplicated before it was
split), makes the validation loss measure how well the model remembers its training examples: early stopping and
model selection on it choose the most memorizing model. The watch keys every row it sees by a fingerprint:

- a row's key is an int64 hash of :data:`POSITIONS` fixed element positions' float32 bits, or of its whole row
  when it has fewer elements, or holds integers (token ids: two sequences that share a few tokens are not one
  example) of :data:`WHOLE_ROW` elements at most; the row length enters the key. Computed with torch ops on the
  inputs' device (no host sync; the sampled elements gathered per forward, a few microseconds a batch on a CPU,
  and keyed when the report reads them), for the first :data:`ROWS`
  training rows before the first ``w.validate()`` after a training step, kept with the sampled elements, and for
  that validation's rows (the forwards without gradients since the last step; the eval-mode ones with gradients
  when there are none; a batch given twice in it, for the accuracy and again for the loss, read once:
  :mod:`~trainwell.doctor.repeated_batches`), :data:`VAL_ROWS` at most; nothing after it. A first validation
  before the epoch ends is matched against the training rows read so far: the share is then a lower bound;
- at report time the share ``s`` of validation rows whose key is a training key is set against the training rows' own
  *natural* duplicate rate ``q``: the share of those training rows that have a twin among them *and* whose every
  sampled element recurs in more rows than the row itself (tabular data with few discrete values: the values recur
  independently of the row; an exact copy of a row with a continuous element repeats that element only with its
  copies, and is not natural; nor is a twin without a near twin, a row equal to it in all sampled elements but one:
  rows of token ids, or of many discrete features, do not come twice by chance; a row repeated over :data:`COPIES`
  times is one input shared by the rows, such as an initial state, not an example). The leaked share
  ``(s - q) / (1 - q)`` of the rows a natural twin does not explain warns from :data:`WARN` and fails from
  :data:`FAIL` (a validation set mostly made of training rows reads memorization only), when ``s - q`` also exceeds
  :data:`Z` binomial standard errors and :data:`MIN_MATCHED` rows. A healthy split of continuous data shares no row
  (keys of 16 float32 values do not collide by chance), and one of discrete data sits at ``q`` within noise; 10% of
  the validation set is already a leak that moves its loss by the train-validation gap's tenth, and an honest split
  never reaches it;
- training rows that are single integers handed beside a shorter 1-D integer tensor (an ``nn.EmbeddingBag``'s
  flat token ids beside the offsets where each bag begins), half of them or more repeating among them, are
  tokens, not examples: a token both splits hold is no example both hold, and the rows are not read;
- a forward given one integer id per example beside other ids of its length (``model(users, items)``) keys its
  examples by the ids side by side (:func:`example_rows`): a user both splits hold is no example both hold;
- validation forwards whose batches split into some made wholly of training rows and the others of none (beyond
  the natural rate: leaked shares over 0.9, and under 0.1 or within noise) are the training set evaluated beside
  the validation set before ``w.validate()``: only the others are read.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.repeated_batches import first_of_each
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation examples"
POSITIONS = 16  # elements sampled per row for its key
WHOLE_ROW = 4096  # integer rows keyed whole up to this many elements
ROWS = 1 << 16  # training rows keyed, at most (the first ones)
VAL_ROWS = 1 << 14  # validation rows keyed, at most
MIN_ROWS = 32  # validation rows before the check reads them
MIN_MATCHED = 8  # validation rows matched beyond the natural rate before a warning
WARN = 0.10  # share of the validation rows, beyond the natural duplicates, that are training rows: warning
FAIL = 0.50  # ... that fails: the validation loss then mostly measures memorization
COPIES = 32  # a row repeated more often among the training rows read is no copy of an example
Z = 4.0  # binomial standard errors the share must exceed the natural rate by
_MIX = 0x9E3779B97F4A7C15 - (1 << 64)  # an odd 64-bit constant (golden ratio), as a signed int64


def _weights(n: int, device: torch.device) -> torch.Tensor:
    """n fixed, distinct, odd int64 multipliers (a splitmix-like scramble of 1..n)."""
    w = (torch.arange(1, n + 1, dtype=torch.int64, device=device) * _MIX)
    w = w ^ (w >> 31)
    w = w * 0x2545F4914F6CDD1D
    return w | 1


class RowKeys:
    """Keys and sampled elements of rows (rows along dim 0), per row length and device: positions and multipliers
    computed once per (length, device). Readers that share one (the training rows' split and their labels) gather a
    batch once: the last batch's reading is kept while that tensor lives unchanged."""

    def __init__(self):
        self._cache: dict = {}
        self._last: tuple | None = None  # (a weak reference to the last batch, its version, its reading)

    def _plan(self, d: int, whole: bool, device: torch.device) -> tuple:
        plan = self._cache.get((d, whole, device))
        if plan is None:
            generator = torch.Generator().manual_seed(d)
            sampled = torch.randperm(d, generator=generator)[:POSITIONS].sort().values.to(device)
            keyed = torch.arange(d, device=device) if whole or d <= POSITIONS else sampled
            salt = (d * _MIX + (1 << 63)) % (1 << 64) - (1 << 63)  # the row length, scrambled, as a signed int64
            plan = self._cache[(d, whole, device)] = (sampled, keyed, _weights(len(keyed), device) ^ salt)
        return plan

    def __call__(self, x) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(keys [n] int64, sampled elements [n, POSITIONS] int32) of x's rows, on x's device; None for what is
        not a batch of real numbers."""
        later = self.deferred(x)
        return None if later is None else later[1]()

    def deferred(self, x) -> tuple[int, Callable[[], tuple[torch.Tensor, torch.Tensor]]] | None:
        """(rows, a function giving :meth:`__call__`'s keys and elements): for floating-point rows only the sampled
        elements are gathered now (one ``index_select``, a copy: a later in-place change to ``x`` does not reach
        it) and the keys are computed when asked for; integer rows are keyed now (a whole row of token ids is not
        kept). None for what is not a batch of real numbers."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or not len(x) or x.is_complex() or x.is_sparse:
            return None
        if x.is_inference():  # no version counter to tell an unchanged batch by
            return self._deferred(x)
        last = self._last
        if last is not None and last[0]() is x and last[1] == x._version:
            return last[2]
        read = self._deferred(x)
        self._last = (weakref.ref(x), x._version, read)
        return read

    def _deferred(self, x: torch.Tensor) -> tuple[int, Callable[[], tuple[torch.Tensor, torch.Tensor]]] | None:
        flat = x.detach().reshape(len(x), -1)
        d = flat.shape[1]
        if d == 0:
            return None
        floating = flat.is_floating_point()
        sampled, keyed, weights = self._plan(d, not floating and d <= WHOLE_ROW, flat.device)
        if floating:  # keyed and sampled hold the same positions
            values = flat.clone() if len(keyed) == d else flat.index_select(1, keyed)
            return len(flat), _FloatKeys(values, weights, d)
        keys = ((flat if len(keyed) == d else flat.index_select(1, keyed)).long() * weights).sum(1)
        elements = _padded(flat.index_select(1, sampled).int(), d)
        return len(flat), lambda: (keys, elements)


class _FloatKeys:
    """A floating-point batch's keys and sampled elements, computed from its gathered elements when first asked
    for and kept: the readers sharing a :class:`RowKeys` (the split's, the labels', ``trainwell watch``'s training
    rows) key a batch once."""

    __slots__ = ("_values", "_weights", "_d", "_read")

    def __init__(self, values: torch.Tensor, weights: torch.Tensor, d: int):
        self._values, self._weights, self._d = values, weights, d
        self._read: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._read is None:
            self._read = _float_keys(self._values, self._weights, self._d)
            self._values = None  # the elements are in the reading now
        return self._read


def _float_keys(values: torch.Tensor, weights: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and sampled elements of floating-point rows from their gathered elements."""
    elements = (values if values.dtype == torch.float32 else values.float()).view(torch.int32)
    return (elements.long() * weights).sum(1), _padded(elements, d)


def _padded(elements: torch.Tensor, d: int) -> torch.Tensor:
    """A row's sampled elements padded to :data:`POSITIONS` columns (a row shorter than that is keyed whole)."""
    return torch.nn.functional.pad(elements, (0, POSITIONS - d)) if d < POSITIONS else elements


class SplitRows:
    """The keys of the training rows read before the first ``w.validate()`` (the forwards with gradients before
    each optimizer step), and of that validation's rows, per batch. Nothing is read after it. A forward's rows are
    gathered as it runs and keyed when the verdict is read (:meth:`RowKeys.deferred`)."""

    def __init__(self):
        self.keys = RowKeys()
        self.train: list[tuple[int, Callable]] = []  # (rows, their keys and elements when asked), per batch
        self.train_rows = 0  # training rows keyed
        self.val: list[Callable] | None = None  # the first validation's keys and elements, per batch
        self._pending_train: list[tuple[int, Callable]] = []
        self._pending_val: list[tuple[int, Callable]] = []
        self._on_training: list[tuple[int, Callable]] = []  # forwards without gradients on a training batch
        self._heads: list[list[bool] | None] = []  # per pending training forward: [scores reached, another reached]
        self._open = False  # the last forward with gradients was kept, and its outputs are not read yet
        self.unlabelled: list = []  # training rows whose loss reached another head of theirs only, not read
        self.bag_rows = True  # every training forward's rows are flat token ids beside their offsets, so far

    def with_grad(self, x, bags: bool = False) -> None:
        """A forward with gradients: a training forward when an optimizer step follows (an eval-mode one, maybe
        the validation's). ``bags``: ``x`` holds flat token ids beside their offsets (:func:`flat_bags`)."""
        if self.val is None:
            if isinstance(x, torch.Tensor) and not bags:
                self.bag_rows = False
            self._open = self._add(self._pending_train, x, max(ROWS - self.train_rows, VAL_ROWS))
            if self._open:
                self._heads.append(None)

    def outputs(self, out) -> None:
        """The end of a forward with gradients: when it returns several heads that require gradients (class
        scores beside a domain classifier's), which of them a backward reaches is read: a forward whose backward
        reaches another head and not the class scores (:func:`~trainwell.doctor.outputs.logits`) trained no label
        of its rows (:meth:`stepped`)."""
        opened, self._open = self._open, False
        if not opened or self.val is not None or isinstance(out, torch.Tensor):
            return
        heads = [t for t in O.leaves(out) if t.is_floating_point() and t.requires_grad]
        scores = O.logits(out)
        if len(heads) < 2 or scores is None or not any(t is scores for t in heads):
            return
        reached = self._heads[-1] = [False, False, None]
        for t in heads:
            t.register_hook(_flag(reached, 0 if t is scores else 1))
        if scores.dim() >= 1 and len(scores) == self._pending_train[-1][0]:
            scores.register_hook(_rows_flag(reached))

    def no_grad(self, x, on_training: bool = False) -> None:
        """A forward without gradients: a validation's when ``w.validate()`` follows before a step, unless it is
        on a training batch (``on_training``: a training accuracy logged) and others are not."""
        if self.val is None:
            self._add(self._on_training if on_training else self._pending_val, x, VAL_ROWS)

    def _add(self, kept: list, x, limit: int) -> bool:
        room = limit - sum(n for n, _ in kept)
        if room > 0 and isinstance(x, torch.Tensor) and x.dim() >= 1:
            read = self.keys.deferred(x if len(x) <= room else x[:room])
            if read is not None:
                kept.append(read)
                return True
        return False

    def stepped(self) -> None:
        """An optimizer step: the forwards with gradients since the last one were training forwards, less those
        whose backward reached another head of theirs and not the class scores: their rows trained no label (the
        target domain's unlabelled inputs through a domain classifier, Ganin & Lempitsky 2015); evaluating on them
        measures no memorized label. Of a forward whose loss reached both, the rows of the class scores its backward
        reached with a gradient other than 0 (the source rows of one forward of source and target rows together)."""
        for (n, rows), heads in zip(self._pending_train, self._heads, strict=True):
            if heads is not None and heads[1] and not heads[0]:
                self.unlabelled.append(n)
                continue
            if heads is not None and heads[1] and heads[2] is not None:  # one forward of labelled and other rows
                rows = _labelled(rows, heads[2])
                self.unlabelled.append(heads[2].logical_not().sum())
            room = ROWS - self.train_rows
            if room <= 0:
                break
            self.train.append((min(room, n), rows))
            self.train_rows += min(room, n)
        self._pending_train, self._pending_val, self._on_training, self._heads = [], [], [], []

    def validated(self) -> None:
        """``w.validate()``: the forwards since the last step were the validation's (read at the first one after
        a training step)."""
        if self.val is None and self.train_rows and (self._pending_val or self._on_training or self._pending_train):
            self.val = [rows for _, rows in self._pending_val or self._on_training or self._pending_train]
        self._pending_train, self._pending_val, self._on_training, self._heads = [], [], [], []

    def verdict(self, masked: tuple[int, int] | None = None) -> Verdict | None:
        """The verdict, or None before a validation. ``masked``: (rows reached, rows) when every training step read
        one batch whose loss reached only a fixed subset of its output rows (a graph network's labelled nodes,
        :func:`~trainwell.doctor.loop_data.masked_rows`): the validation forward then reads the same inputs, all
        the nodes, and its loss other rows of the output; the rows tell no leak."""
        if self.val is None:
            return None
        if masked is not None:
            return Verdict(NAME, "pass", f"full-batch training on {masked[0]} labelled rows of {masked[1]} (a graph "
                           "network's training nodes): its validation forward reads the same inputs, and its loss "
                           "the other rows", expected_text())
        train = [(n, rows()) for n, rows in self.train]
        keys = torch.cat([k[:n] for n, (k, _) in train]).cpu()
        elements = torch.cat([e[:n] for n, (_, e) in train]).cpu()
        distinct = len(torch.unique(keys))
        if self.bag_rows and 2 * distinct <= len(keys):
            return Verdict(NAME, "pass", f"the training rows are flat token ids beside their offsets ({distinct} "
                           f"distinct in {len(keys)} rows read: an EmbeddingBag's input), not examples: a token "
                           "both splits hold is no example both hold", expected_text())
        val = [rows()[0].cpu() for rows in self.val]
        found = validation_rows(keys, elements, [val[i] for i in first_of_each(val)])
        unlabelled = int(sum(self.unlabelled))
        if unlabelled and found.status in ("pass", "skip"):
            found.value = (f"{found.value}; {unlabelled} training rows whose loss reached another head only (a "
                           "domain classifier's), not their class scores, are not counted: their labels were not "
                           "trained on")
        return found


def _flag(reached: list[bool], i: int) -> Callable:
    """A tensor hook that sets ``reached[i]`` when a backward reaches the tensor."""
    def hook(grad) -> None:
        reached[i] = True
    return hook


def _rows_flag(reached: list) -> Callable:
    """A hook on a forward's class scores that keeps, in ``reached[2]``, which of their rows a backward reached
    with a gradient other than 0 (the labelled rows of one forward of labelled and unlabelled rows together)."""
    def hook(grad) -> None:
        hit = grad.detach().reshape(len(grad), -1).ne(0).any(1)
        reached[2] = hit if reached[2] is None else reached[2] | hit
    return hook


def _labelled(rows: Callable, hit: torch.Tensor) -> Callable:
    """A forward's keys and sampled elements, when asked, of its rows ``hit`` only."""
    def read() -> tuple[torch.Tensor, torch.Tensor]:
        keys, elements = rows()
        return keys[hit[:len(keys)]], elements[hit[:len(keys)]]
    return read


def flat_bags(args: tuple, kwargs: dict, x) -> bool:
    """Whether a forward's first tensor ``x`` is flat token ids (1-D integers) handed beside a shorter 1-D integer
    tensor, the offsets where each bag begins (``nn.EmbeddingBag(text, offsets)``): its rows are tokens."""
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.is_floating_point() or x.is_complex():
        return False
    return any(isinstance(t, torch.Tensor) and t is not x and t.dim() == 1 and not t.is_floating_point() and
               not t.is_complex() and t.dtype != torch.bool and len(t) < len(x) for t in (*args, *kwargs.values()))


def example_rows(args: tuple, kwargs: dict, x):
    """The rows that make a forward's examples: its first tensor ``x``, or, when ``x`` holds one integer id per
    example (1-D) and the forward takes other 1-D integer tensors of its length, the ids side by side as (n, k)
    rows. A recommender's ``model(users, items)`` (He et al. 2017) or a knowledge-graph model's ``(head, relation,
    tail)`` meets each user in many examples, in both splits by design: its example is the pair, not the user.
    ``x`` otherwise (flat token ids beside offsets, :func:`flat_bags`, are shorter than the ids)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.is_floating_point() or x.is_complex() or \
            x.dtype == torch.bool:
        return x
    ids = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor) and t.dim() == 1 and
           len(t) == len(x) and not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool]
    if not any(t is x for t in ids):
        ids.insert(0, x)
    return torch.stack([t.long() for t in ids], 1) if len(ids) > 1 else x


def natural_rate(keys: torch.Tensor, elements: torch.Tensor) -> float:
    """The share of rows that have a twin among them (same key), whose every sampled element recurs in more rows
    than the row itself and that have a near twin (:func:`near_twins`: duplicates that rows of few discrete values
    explain, not copies), or that repeat more than :data:`COPIES` times (one input shared by the rows, not an
    example: an initial state, position ids)."""
    if len(keys) < 2:
        return 0.0
    return float(natural_rows(keys, elements).float().mean())


def natural_rows(keys: torch.Tensor, elements: torch.Tensor) -> torch.Tensor:
    """Per row: whether :func:`natural_rate` counts it (a twin that few discrete values explain, or one input
    shared by more than :data:`COPIES` rows)."""
    _, row_index, row_counts = torch.unique(keys, return_inverse=True, return_counts=True)
    count = row_counts[row_index]
    recurs = torch.ones(len(keys), dtype=torch.bool)
    for column in elements.T:
        _, index, counts = torch.unique(column, return_inverse=True, return_counts=True)
        recurs &= counts[index] > count
    natural = recurs & near_twins(elements, count) if bool(((count > 1) & recurs).any()) else recurs
    return (count > 1) & (natural | (count > COPIES))


def near_twins(elements: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Per row: whether another row, not its twin, holds the same sampled elements but one (``count``: the rows
    equal to each). Rows of few discrete values that repeat by chance lie among rows that differ from them in one
    value (a questionnaire's answers, tabular categories); a copied row of token ids, or of many discrete features,
    has no such neighbour: its twins are copies (a data set duplicated before it was split)."""
    weights = _weights(elements.shape[1], elements.device)
    values = elements.long()
    near = torch.zeros(len(values), dtype=torch.bool, device=values.device)
    for j in range(values.shape[1]):
        masked = (values * weights).sum(1) - values[:, j] * weights[j]
        _, index, counts = torch.unique(masked, return_inverse=True, return_counts=True)
        near |= counts[index] > count
    return near


def expected_text() -> str:
    """The verdict's expected value."""
    return f"under {WARN:.0%} of the validation rows training rows beyond the natural duplicate rate"


def validation_rows(keys: torch.Tensor, elements: torch.Tensor, val: list[torch.Tensor]) -> Verdict:
    """The verdict on the validation rows (keys per batch) against the training rows read before them (keys and
    sampled elements)."""
    natural = natural_rate(keys, elements)
    matched = [torch.isin(k, keys) for k in val]
    excess = [float(m.float().mean()) - natural for m in matched]
    whole = [e >= 0.9 * (1 - natural) for e in excess]
    none = [e <= max(0.1 * (1 - natural), Z * math.sqrt(natural * (1 - natural) / len(m)))
            for e, m in zip(excess, matched, strict=True)]
    note = ""
    if any(whole) and not all(whole) and all(w or n for w, n in zip(whole, none, strict=True)):
        n_train = sum(len(m) for m, w in zip(matched, whole, strict=True) if w)
        matched = [m for m, w in zip(matched, whole, strict=True) if not w]
        note = f"; {n_train} rows of training examples evaluated beside them are not counted"
    rows = sum(len(m) for m in matched)
    if rows < MIN_ROWS:
        return Verdict(NAME, "skip", f"skipped: {rows} validation rows read (under {MIN_ROWS})", "-", "")
    hits = int(sum(int(m.sum()) for m in matched))
    share = hits / rows
    leaked = max(share - natural, 0.0) / max(1.0 - natural, 1e-9)
    noise = Z * math.sqrt(max(natural * (1 - natural), 1.0 / rows) / rows)
    excess_rows = (share - natural) * rows
    reading = (f"{hits} of {rows} validation rows are training rows (against the {len(torch.unique(keys))} "
               f"distinct training rows read before them; {natural:.1%} of the training rows have a natural twin "
               f"among them){note}")
    expected = expected_text()
    if leaked < WARN or share - natural <= noise or excess_rows < MIN_MATCHED:
        if hits:  # as many equal rows as the training rows' own duplicates explain: not called training rows
            reading = (f"{hits} of {rows} validation rows equal a training row, as the training rows' own duplicate "
                       f"rate explains ({natural:.1%} of the {len(keys)} training rows read have a twin among them: "
                       f"discrete values, or an input every row shares){note}")
        return Verdict(NAME, "pass", reading, expected)
    return Verdict(NAME, "fail" if leaked >= FAIL else "warn", reading, expected,
                   "the validation loss measures how well the model remembers its training examples, so early "
                   "stopping and model selection on it pick the most memorizing model: split the data once "
                   "(random_split, or one permutation of the indices), deduplicate before splitting, and keep the "
                   "two apart")
