"""The plain loop a user writes, under ``doctor.watch``: the tests' one copy of it."""

import torch.nn.functional as F

from trainwell import doctor


def epoch(model, opt, x, y, loss_fn=F.cross_entropy, every=5, batch=32, labels=False):
    """One epoch of a plain loop in order over ``x, y`` under ``doctor.watch`` (``labels``: the targets given to
    ``w.step`` too); returns the watch."""
    with doctor.watch(model, opt, every=every) as w:
        for i in range(0, len(x), batch):
            loss = loss_fn(model(x[i : i + batch]), y[i : i + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + batch] if labels else None)
    return w


def steps(model, opt, x, y, n, loss_fn=F.cross_entropy, batch=64, every=5, before_step=None, after_step=None):
    """``n`` optimizer steps over ``x, y`` in order (wrapping around) under ``doctor.watch``: ``before_step(s)``
    runs between ``backward()`` and ``opt.step()`` (clipping), ``after_step(s)`` after it (a scheduler); returns the
    watch."""
    with doctor.watch(model, opt, every=every) as w:
        for s in range(n):
            i = (s * batch) % len(x)
            loss = loss_fn(model(x[i : i + batch]), y[i : i + batch])
            opt.zero_grad()
            loss.backward()
            if before_step is not None:
                before_step(s)
            opt.step()
            if after_step is not None:
                after_step(s)
            w.step(loss)
    return w
