"""``loop: every batch reaches backward``: batches run through the model whose loss never reaches ``backward()``.

``loss.backward()`` and ``optimizer.step()`` dedented out of the batch loop run once per epoch, on the last batch's
loss: every other batch's forward builds a graph that is dropped when ``loss`` is reassigned. Nothing fails; the
model takes one step per epoch and the run reads as a few steps that learned little.

Read at every optimizer step (the first 64): the training forwards (train mode, with gradients) since the last
step that no backward reached. A fail when on every one of 3 steps or more :data:`DROPPED` or more were dropped: an
accuracy logged with gradients drops fewer. Another optimizer given to the watch that steps between the forwards
(a WGAN's critic, ``n_critic`` steps per generator step, each on a ``G(z).detach()`` of its own) used them: the
forwards are counted in the longest run between two such steps, so only forwards piled up before one step are.
A generator watched with its own optimizer only (its loss read as going through another model's parameters) is
not read: the critic's steps are not seen."""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: every batch reaches backward"
DROPPED = 8  # train-mode forwards with gradients per step that no backward reached
MIN_STEPS = 3
#: how the game reading of a generator's loss begins (:mod:`~trainwell.doctor.game_reading`)
GENERATOR = "the loss goes through"


def dropped_run(dropped: list[bool], others: list[int]) -> int:
    """The most forwards no backward reached (``dropped``: per forward since the last step) between two steps of
    another optimizer (``others``: how many forwards had run at each).

    Example:
        >>> dropped_run([True, True, True], [1, 2, 3])  # a critic's step after each detached generator forward
        1
        >>> dropped_run([True] * 10 + [False], [])
        10
    """
    runs, start = [], 0
    for end in [*others, len(dropped)]:
        runs.append(sum(dropped[start:end]))
        start = max(start, end)
    return max(runs)


def dropped_batches(dropped: list[int], game: str | None = None) -> Verdict | None:
    """The fail described in the module docstring, or None; none for a generator (``game``: the watch's reading
    of a two-player game, the loss going through another model's parameters) whose critic's optimizer was not
    given to the watch: its detached samples for the critic's steps are no batches."""
    if game is not None and game.startswith(GENERATOR):
        return None
    if len(dropped) < MIN_STEPS or min(dropped) < DROPPED:
        return None
    return Verdict(NAME, "fail", f"on {len(dropped)} of {len(dropped)} optimizer steps {min(dropped)} or more "
                   "training forwards ran before it whose loss no backward() reached: only the last batch before "
                   "each step trains", "one backward() per training forward",
                   "loss.backward() and optimizer.step() run outside the batch loop (dedented?): call them, with "
                   "zero_grad(), inside it, once per batch")
