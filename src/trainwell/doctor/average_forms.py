"""The averages a validation loss can be of its batches' losses: the right ones (the mean per example, or per token
for a sequence loss, and the mean of the batch means) and the wrong ones (batch means summed and divided by a count
of examples, tokens or sequences; batch sums divided by the number of batches).

Each batch is one loss call: ``(rows, reduction, value[, units[, sequences]])``: the rows of the loss's input (its
first dimension), ``"mean"`` or ``"sum"``, the value returned, the units the loss averages over (the targets not
equal to ``ignore_index`` of a class-index loss: a language model's non-pad tokens, ``loss_fn(logits.view(-1, V),
y.view(-1))``; the rows otherwise) and the rows of the forward that made the scores (a language model's sequences).
"""

from __future__ import annotations

CLOSE = 1e-4  # relative difference within which the given value equals a form
APART = 2.0  # the wrong form at least this factor from the right one
#: the mean of the batch means this far (relative) from the mean per example: a small last batch weighs as much as
#: a full one (a bias below it, the common case of many batches, is not named)
UNEQUAL = 0.05


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


def tokens(calls: list[tuple]) -> bool:
    """Whether the loss averages over tokens rather than examples: targets ignored (padding), more units than rows
    (a class-index target of shape (B, T)), or loss rows a multiple (2 or more) of the forward's rows (scores
    flattened to (B*T, C))."""
    return any(u != r or (s and r != s and r % s == 0) for r, _, _, u, s in counts(calls))


def forms(calls: list[tuple]) -> tuple[list[float], dict[str, float], float]:
    """The right averages, the batch means summed over each count (``"units"``, ``"sequences"``, ``"rows"``: the
    first of equal ones is the one named) and the batch sums over the batches."""
    b = [(r, red, v, u, s) for r, red, v, u, s in counts(calls) if u > 0]
    means = [v / u if red == "sum" else v for _, red, v, u, _ in b]
    sums = [v if red == "sum" else v * u for _, red, v, u, _ in b]
    units, rows, seqs = (sum(c[i] for c in b) for i in (3, 0, 4))
    right = [sum(sums) / units, sum(means) / len(b), sum(m * c[0] for m, c in zip(means, b, strict=True)) / rows,
             sum(m * c[4] for m, c in zip(means, b, strict=True)) / seqs]
    return right, {"units": sum(means) / units, "sequences": sum(means) / seqs, "rows": sum(means) / rows}, \
        sum(sums) / len(b)


def matched(value: float, calls: list[tuple]) -> tuple[str | None, str | None]:
    """Which average ``value`` is of the batches' losses: ``("right", None)``, ``("unequal", None)`` (the mean of
    batch means of unequal sizes, :data:`UNEQUAL` or more from the mean per example), ``("means", count)`` (batch
    means summed, over ``count``: ``"units"``, ``"sequences"`` or ``"rows"``), ``("sums", None)`` (batch sums
    summed, over the batches), or ``(None, None)`` (none of them, or too few batches to tell)."""
    if len(calls) < 2 or not any(u > 0 for _, _, _, u, _ in counts(calls)):
        return None, None
    right, means, sums = forms(calls)
    weighted, mean_of_means = right[0], right[1]
    if _close(value, mean_of_means) and not any(_close(value, r) for r in right[:1] + right[2:]) and \
            abs(mean_of_means - weighted) >= UNEQUAL * abs(weighted):
        return "unequal", None
    if any(_close(value, r) for r in right):
        return "right", None

    def apart(w: float) -> bool:
        return all(abs(w) >= APART * abs(r) or abs(r) >= APART * abs(w) for r in right)

    for count, w in means.items():
        if _close(value, w) and apart(w):
            return "means", count
    if _close(value, sums) and apart(sums):
        return "sums", None
    return None, None


def wrong_form(value: float, calls: list[tuple]) -> str | None:
    """Which wrong average ``value`` is of the batches' losses (``calls``: rows, reduction, value per batch, and
    optionally units and sequences): ``"means"`` (batch means summed, over the examples, tokens or sequences),
    ``"sums"`` (batch sums summed, over the batches), ``"unequal"`` (the mean of batch means of unequal sizes, far
    from the mean per example), ``"right"`` (the mean per example or token, or the mean of the batch means), or
    None (none of them)."""
    return matched(value, calls)[0]
