"""For ``trainwell watch``: a watch that follows the loop's optimizer when the loop builds it again over the same
parameters.

A script may create its optimizer anew (``opt = torch.optim.SGD(model.parameters(), ...)``) at the top of every
epoch (the bug ``loop: optimizer built once`` names: its state starts over each time), or once for a new stage of
the same training (SGD after Adam). Either way the loop goes on: the new optimizer takes the old one's place in the
watch, whose readings of each step (the rate applied, ``.grad`` at the step, the steps per ``w.step()``, where
clipping runs) then read the new one's steps. The constructions themselves are read by
:class:`~trainwell.doctor.rebuilt_optimizers.OptimizerBuilds`, which names the rebuilds when they recur.
"""

from __future__ import annotations


def follow(watch, old, new) -> None:
    """``new`` (built over the parameters ``old`` holds) takes ``old``'s place in ``watch``."""
    if not watch.probe.follow(old, new):
        return
    watch._state.optimizer = watch.probe.optimizer
    watch._given = [new if o is old else o for o in watch._given]
    clips = watch._clips
    if any(o is old for o in clips.optimizers):
        clips.optimizers = [new if o is old else o for o in clips.optimizers]
        if clips._hooks:
            clips._hooks.append(new.register_step_post_hook(clips._stepped))


__all__ = ["follow"]
