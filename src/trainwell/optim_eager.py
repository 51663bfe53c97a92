"""torch optimizers that do not import ``torch._dynamo`` while nothing is being compiled.

torch wraps ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
``torch._disable_dynamo`` and every optimizer's ``step`` in ``_use_grad_for_differentiable``. Both wrappers tell
the compiler (TorchDynamo) how to treat the call, and both import ``torch._dynamo`` to do so: the first optimizer a
process builds pays for that import, about 1 s here plus 0.3 s at the interpreter's exit (RESULTS section 36),
even in a process that never compiles anything.

While ``torch._dynamo`` is not loaded nothing can be compiling, and then the wrappers do nothing but set the grad
mode around ``step``. :func:`eager` returns a subclass of a torch optimizer whose wrapped methods call torch's
undecorated functions in that case, and torch's own wrappers (rebuilt around the same functions by torch's own
decorators) as soon as ``torch._dynamo`` is loaded, so a compiled step sees exactly what torch's class gives it.
A method whose wrapper is not one of these two (a torch release that changed them) is inherited unchanged.
"""

from __future__ import annotations

import functools
import sys

import torch
from torch.optim import optimizer as _torch_optimizer

_DISABLE_CODE = torch._disable_dynamo(lambda: None).__code__
_USE_GRAD_CODE = _torch_optimizer._use_grad_for_differentiable(lambda self: None).__code__
_DISABLED_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _undecorated(method, code):
    """The function inside ``method`` that the wrapper with ``code`` wraps (through torch's profiling hook on
    ``step``), or None where no such wrapper is on the chain."""
    while method is not None:
        if getattr(method, "__code__", None) is code:
            return method.__wrapped__
        method = getattr(method, "__wrapped__", None)
    return None


def _compiler_loaded() -> bool:
    return "torch._dynamo" in sys.modules


def _either(raw, torch_wrapped, eager_call):
    """A method that calls ``torch_wrapped`` once ``torch._dynamo`` is loaded and ``eager_call`` before."""

    @functools.wraps(raw)
    def method(self, *args, **kwargs):
        if _compiler_loaded():
            return torch_wrapped(self, *args, **kwargs)
        return eager_call(self, *args, **kwargs)

    return method


def _without_grad_unless_differentiable(raw):
    """``raw`` (an optimizer's undecorated ``step``) in the grad mode torch's step wrapper sets."""

    def step(self, *args, **kwargs):
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return raw(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(previous)

    return step


@functools.cache
def eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of the torch optimizer ``cls`` (same name, same updates, same state dicts) that imports
    ``torch._dynamo`` only if something else has: see the module's docstring."""
    namespace = {"__module__": __name__, "__qualname__": cls.__name__,
                 "__doc__": f"{cls.__name__}, without importing torch._dynamo while nothing compiles."}
    for name in _DISABLED_METHODS:
        raw = _undecorated(getattr(cls, name, None), _DISABLE_CODE)
        if raw is not None:
            namespace[name] = _either(raw, torch._disable_dynamo(raw), raw)
    raw = _undecorated(cls.step, _USE_GRAD_CODE)
    if raw is not None:
        namespace["step"] = _either(raw, _torch_optimizer._use_grad_for_differentiable(raw),
                                    _without_grad_unless_differentiable(raw))
    namespace["__reduce_ex__"] = _reduce_ex
    return type(cls.__name__, (cls,), namespace)


def _reduce_ex(self, protocol):
    """Pickle as ``eager(torch's class)``: the class is made at run time, so pickle cannot find it by name. A
    subclass of it pickles as any object does."""
    cls = type(self)
    if vars(cls).get("__reduce_ex__") is not _reduce_ex:
        return object.__reduce_ex__(self, protocol)
    return _unpickle, (cls.__bases__[0], self.__getstate__())


def _unpickle(torch_cls, state):
    optimizer = eager(torch_cls).__new__(eager(torch_cls))
    optimizer.__setstate__(state)
    return optimizer
