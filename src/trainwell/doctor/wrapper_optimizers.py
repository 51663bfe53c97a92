"""Optimizers written as wrappers that subclass ``torch.optim.Optimizer`` without calling its ``__init__``.

Lookahead (Zhang et al. 2019) and similar wrappers are often written as ``class Lookahead(Optimizer)`` whose
``__init__`` takes the inner optimizer's ``param_groups``, ``state`` and ``defaults`` and never calls
``super().__init__()``. PyTorch runs them as the user wrote them, but such an optimizer holds none of the step-hook
dictionaries ``Optimizer.__init__`` creates, and its class's ``step`` is not wrapped to run hooks, so
``register_step_pre_hook`` raises ``AttributeError``. :func:`hookable` gives it what ``Optimizer.__init__`` would
have: empty hook dictionaries and the class's ``step`` wrapped (``Optimizer._patch_step_function``); an optimizer
that has them is left as it is.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

#: the hook dictionaries ``torch.optim.Optimizer.__init__`` creates
HOOK_DICTS = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_state_dict_pre_hooks",
              "_optimizer_state_dict_post_hooks", "_optimizer_load_state_dict_pre_hooks",
              "_optimizer_load_state_dict_post_hooks")


def hookable(optimizer) -> None:
    """Give an ``Optimizer`` subclass instance whose ``__init__`` skipped ``Optimizer.__init__`` its missing hook
    dictionaries and a hook-running ``step``, so that step hooks can be registered on it."""
    if not isinstance(optimizer, torch.optim.Optimizer) or hasattr(optimizer, "_optimizer_step_pre_hooks"):
        return
    for name in HOOK_DICTS:
        if not hasattr(optimizer, name):
            setattr(optimizer, name, OrderedDict())
    optimizer._patch_step_function()
