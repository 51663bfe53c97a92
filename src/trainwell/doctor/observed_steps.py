"""Which of a watched loop's steps are read whole: one in each block of ``every`` steps, the block's last moved
earlier by the block's number mod 7 (0 for the first block). The observed steps then fall on every phase of a short
period of the loop's own (``zero_grad()`` every 4 steps, a validation every 10) instead of one phase each time, which
would hide what happens on the others. The activation monitor keeps its own cadence (the last step of each block, as
in ``fit``): a compiled loop runs uncompiled on the steps of both."""

from __future__ import annotations


def phased_step(k: int, every: int) -> bool:
    """Whether step ``k`` (from 0) is its block's observed step.

    >>> [k for k in range(60) if phased_step(k, 20)]
    [19, 38, 57]
    """
    block = k // every
    return k == (block + 1) * every - 1 - block % 7 % every
