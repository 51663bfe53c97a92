"""The averages a validation loss can be of its batches' losses: the right ones (the mean per example, or per token
for a sequence loss, and the mean of the batch means) and the wrong ones (batch means summed and divided by a count
of examples, tokens or sequences; batch sums divided by the number of batches).

Each batch is one loss call: ``(rows, reduction, value[, units[, sequences[, targets[, weighted]]]])``: the rows
of the loss's input (its first dimension), ``"mean"`` or ``"sum"``, the value returned, the units the loss averages
over (the targets not equal to ``ignore_index`` of a class-index loss: a language model's non-pad tokens,
``loss_fn(logits.view(-1, V), y.view(-1))``; with class weights, ``CrossEntropyLoss(weight=w)``, the sum of the
weights of those targets, which is what torch divides by; the rows otherwise), the rows of the forward that made
the scores (a language model's sequences), the targets counted, the ignored ones included (every position of a
padded batch), and whether the units are class weights.

Two more wrong forms read the batch sums over another count than the units: over every target (the pads counted in
the denominator though the loss ignores them; with class weights, the examples rather than their weights), and
over the sequences (a loss per sequence: named only when the training loss is per token, see :func:`matched`).
"""

from __future__ import annotations

CLOSE = 1e-4  # relative difference within which the given value equals a form
APART = 2.0  # the wrong form at least this factor from the right one
#: the mean of the batch means this far (relative) from the mean per example: a small last batch weighs as much as
#: a full one (a bias below it, the common case of many batches, is not named)
UNEQUAL = 0.05
#: the batch sums over every target (pads, or examples rather than their class weights) this factor at least from
#: every right form: they differ by the share of pads or the mean class weight, not by a batch size
MISCOUNTED = 1.25


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= CLOSE * max(abs(a), abs(b), 1e-12)


def counts(calls: list[tuple]) -> list[tuple[int, str, float, float, float]]:
    """Each call as (rows, reduction, value, units, sequences), the missing counts the rows."""
    out = []
    for rows, reduction, value, *rest in calls:
        units = rest[0] if rest and rest[0] is not None else rows
        seqs = rest[1] if len(rest) > 1 and rest[1] is not None else rows
        out.append((rows, reduction, value, float(units), float(seqs)))
    return out


def targets(calls: list[tuple]) -> tuple[float, bool]:
    """The targets counted over all batches, the ignored ones included (the rows where a call does not say), and
    whether the units are class weights."""
    total, weighted = 0.0, False
    for call in calls:
        total += call[5] if len(call) > 5 and call[5] is not None else call[0]
        weighted = weighted or (len(call) > 6 and bool(call[6]))
    return total, weighted


def tokens(calls: list[tuple]) -> bool:
    """Whether the loss averages over tokens rather than examples: targets ignored (padding), more units than rows
    (a class-index target of shape (B, T)), or loss rows a multiple (2 or more) of the forward's rows (scores
    flattened to (B*T, C)); with class weights (units that are weights, not counts) more targets than rows."""
    weighted = [len(c) > 6 and bool(c[6]) for c in calls]
    return any((u != r and not w) or (s and r != s and r % s == 0) or (w and len(c) > 5 and c[5] not in (None, r))
               for (r, _, _, u, s), w, c in zip(counts(calls), weighted, calls, strict=True))


def forms(calls: list[tuple]) -> tuple[list[float], dict[str, float], dict[str, float]]:
    """The right averages, the batch means summed over each count (``"units"``, ``"sequences"``, ``"rows"``: the
    first of equal ones is the one named; no ``"units"`` when they are class weights) and the batch sums over each
    count (``"batches"``; ``"targets"`` when the targets counted differ from the units; ``"sequences"`` for a
    sequence loss)."""
    b = [(r, red, v, u, s) for r, red, v, u, s in counts(calls) if u > 0]
    means = [v / u if red == "sum" else v for _, red, v, u, _ in b]
    sums = [v if red == "sum" else v * u for _, red, v, u, _ in b]
    units, rows, seqs = (sum(c[i] for c in b) for i in (3, 0, 4))
    right = [sum(sums) / units, sum(means) / len(b), sum(m * c[0] for m, c in zip(means, b, strict=True)) / rows,
             sum(m * c[4] for m, c in zip(means, b, strict=True)) / seqs]
    counted, weighted = targets([c for c in calls if counts([c])[0][3] > 0])
    over = {"units": sum(means) / units, "sequences": sum(means) / seqs, "rows": sum(means) / rows}
    if weighted:
        del over["units"]
    summed = {"batches": sum(sums) / len(b)}
    if not _close(counted, units):
        summed["targets"] = sum(sums) / counted
    if tokens(calls):
        summed["sequences"] = sum(sums) / seqs
    return right, over, summed


def matched(value: float, calls: list[tuple], train: float | None = None,
            per_target: bool = False) -> tuple[str | None, str | None]:
    """Which average ``value`` is of the batches' losses: ``("right", None)``, ``("unequal", None)`` (the mean of
    batch means of unequal sizes, :data:`UNEQUAL` or more from the mean per example), ``("means", count)`` (batch
    means summed, over ``count``: ``"units"``, ``"sequences"`` or ``"rows"``), ``("sums", count)`` (batch sums
    summed, over ``count``: ``"batches"``, or ``"targets"``, every target counted where the loss averages over fewer
    or over class weights), or ``(None, None)`` (none of them, or too few batches to tell). A sequence loss's batch
    sums over the sequences (``("sums", "sequences")``: a loss per sequence, a unit of its own) only when the
    training loss is per token: ``per_target`` (the training loss is its class-index call's mean over its targets,
    read on its first steps), or ``train`` :data:`APART` or more from ``value`` and within :data:`APART` of the mean
    per token (an early validation, whose training loss still holds the first steps' high losses, is read only
    with ``per_target``). A validation of one batch (the whole set in one call) is read only with ``per_target``:
    its wrong forms are then the call's sum given as the loss (``reduction="sum"`` never divided, ``("sums",
    "batches")``) and its mean divided by the examples, where the training loss is a mean."""
    if (len(calls) < 2 and not (calls and per_target)) or not any(u > 0 for _, _, _, u, _ in counts(calls)):
        return None, None
    right, means, sums = forms(calls)
    weighted, mean_of_means = right[0], right[1]
    # batches unequal in size, not in class weights: with class weights the mean of the means is held against the
    # means weighted by their rows
    held = right[2] if targets(calls)[1] else weighted
    if _close(value, mean_of_means) and not any(_close(value, r) for r in right[:1] + right[2:]) and \
            abs(mean_of_means - held) >= UNEQUAL * abs(held):
        return "unequal", None
    if any(_close(value, r) for r in right):
        return "right", None

    def apart(w: float, factor: float = APART) -> bool:
        return all(abs(w) >= factor * abs(r) or abs(r) >= factor * abs(w) for r in right)

    for count, w in means.items():
        if _close(value, w) and apart(w):
            return "means", count
    for count, w in sums.items():
        if count == "sequences" and not per_target and (train is None or not _within(train, weighted) or
                                                         _within(train, value)):
            continue
        if _close(value, w) and apart(w, MISCOUNTED if count == "targets" else APART):
            return "sums", count
    return None, None


def _within(a: float, b: float) -> bool:
    """Whether ``a`` and ``b`` lie within a factor :data:`APART` of each other."""
    return abs(a) < APART * abs(b) and abs(b) < APART * abs(a)


def wrong_form(value: float, calls: list[tuple]) -> str | None:
    """Which wrong average ``value`` is of the batches' losses (``calls``: rows, reduction, value per batch, and
    optionally units and sequences): ``"means"`` (batch means summed, over the examples, tokens or sequences),
    ``"sums"`` (batch sums summed, over the batches), ``"unequal"`` (the mean of batch means of unequal sizes, far
    from the mean per example), ``"right"`` (the mean per example or token, or the mean of the batch means), or
    None (none of them)."""
    return matched(value, calls)[0]


def mixed(value: float, calls: list[tuple], extra: list[tuple]) -> bool:
    """Whether ``value`` is an average of the validation's batches (``calls``) with the losses of ``extra`` batches
    (a training batch's, recomputed before the validation) added in: their batch means or sums summed with the
    validation's and divided by the validation's own count (batches, units, rows) or by both counts, while no right
    average of the validation's batches alone equals it."""
    own = [c for c in counts(calls) if c[3] > 0]
    more = [c for c in counts(extra) if c[3] > 0]
    if len(own) < 2 or not more or any(_close(value, r) for r in forms(calls)[0]):
        return False

    def mean(c: tuple) -> float:
        return c[2] / c[3] if c[1] == "sum" else c[2]

    every = own + more
    means, sums = sum(mean(c) for c in every), sum(c[2] if c[1] == "sum" else c[2] * c[3] for c in every)
    by_rows = sum(mean(c) * c[0] for c in every)
    candidates = [means / len(own), means / len(every), sums / sum(c[3] for c in own), sums / sum(c[3] for c in every),
                  by_rows / sum(c[0] for c in own), by_rows / sum(c[0] for c in every)]
    return any(_close(value, w) for w in candidates)
