"""``optimizer.step()`` dedented out of the batch loop: ``zero_grad()``, the forward, the loss and ``backward()``
run for every batch, and the step once, after the epoch's last batch. Each ``zero_grad()`` throws the previous
batch's gradient away, so the model takes one step per epoch, on the last batch's gradient alone.

Read where the loop's own ``w.step()`` calls cannot tell it (``trainwell watch`` reads a step at each
``optimizer.step()``): the optimizer stepped about once per epoch (no more than one step more than the epochs seen)
and the observed steps found ``.grad`` holding the last of many ``backward()`` passes (:data:`LEAST_PASSES` or more)
with ``zero_grad()`` between them. Gradient accumulation with ``zero_grad()`` in the wrong place steps every k
micro-batches, many times per epoch, and is named by ``loop: gradients at optimizer.step()`` alone.
"""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: optimizer.step() runs"
LEAST_PASSES = 8  # backward() passes per step, at least
LEAST_EPOCHS = 2


def once_per_epoch(steps: list[dict], opt_steps: int, epochs: int) -> Verdict | None:
    """The fail described in the module docstring, or None."""
    dropped = [s for s in steps if s.get("dropped")]
    if epochs < LEAST_EPOCHS or not 2 <= opt_steps <= epochs + 1 or not dropped or 2 * len(dropped) < len(steps):
        return None
    passes = max(s["backwards"] for s in dropped)
    if passes < LEAST_PASSES:
        return None
    return Verdict(NAME, "fail", f"optimizer.step() ran {opt_steps} times over {epochs} epochs, each after "
                   f"{passes} backward() passes of which zero_grad() left only the last: the model steps once per "
                   "epoch, on its last batch's gradient", "one optimizer.step() per batch, after its backward()",
                   "optimizer.step() sits outside the batch loop (dedented): indent it into the loop, right after "
                   "loss.backward()")


__all__ = ["NAME", "once_per_epoch"]
