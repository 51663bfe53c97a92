"""``trainwell watch --model NAME``: the model to watch named by the user, read from the script's globals.

``NAME`` is a global of the script's ``__main__`` (``model``) or a dotted path of attributes from one
(``trainer.model``, ``nets.student``; a dict's key is taken as an attribute too). A name that does not lead to an
``nn.Module`` is a one-line error naming what the script holds there.
"""

from __future__ import annotations

from torch import nn

#: names listed at most in an error
LISTED = 12


def _modules_in(names: dict) -> list[str]:
    return [k for k, v in names.items() if not str(k).startswith("_") and isinstance(v, nn.Module)][:LISTED]


def _public(names: dict) -> list[str]:
    return [k for k in names if not str(k).startswith("_") and not callable(names[k])][:LISTED]


def _attributes(obj) -> dict:
    """The attributes an object holds (a dict's items), for the next part of a dotted name."""
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, nn.Module):
        return dict(obj.named_children())
    return dict(getattr(obj, "__dict__", {}) or {})


def _seen(names: dict, where: str) -> str:
    modules = _modules_in(names)
    if modules:
        return f"the nn.Modules {where} holds: {', '.join(modules)}"
    public = _public(names)
    return f"{where} holds no nn.Module (its names: {', '.join(public)})" if public else f"{where} holds no nn.Module"


def named_model(name: str, names: dict) -> nn.Module:
    """The module ``name`` leads to from the script's globals ``names``; a ValueError, in one line naming what is
    there, when it leads to nothing or to something else than an ``nn.Module``."""
    parts = name.split(".")
    where, held, value = "the script", names, None
    for i, part in enumerate(parts):
        if part not in held:
            what = "global" if i == 0 else "attribute"
            raise ValueError(f"--model {name}: {where} has no {what} {part!r}; {_seen(held, where)}")
        value = held[part]
        where = f"{'.'.join(parts[: i + 1])} (of type {type(value).__name__})"
        if i + 1 < len(parts):
            held = _attributes(value)
    if not isinstance(value, nn.Module):
        raise ValueError(f"--model {name} is of type {type(value).__name__}, not a torch nn.Module; "
                         f"{_seen(names, 'the script')}")
    return value


def named_and_trained(name: str, names: dict, optimizers: list) -> tuple[nn.Module | None, list]:
    """The module ``name`` leads to (:func:`named_model`; ValueError when none) and, of ``optimizers``, those
    training it; ``(None, optimizers)`` when none is (another loop's, a teacher's before the named student's)."""
    model = named_model(name, names)
    held = {id(p) for p in model.parameters()}
    mine = [o for o in optimizers if any(id(p) in held for g in o.param_groups for p in g["params"])]
    return (model, mine) if mine else (None, optimizers)


__all__ = ["named_and_trained", "named_model"]
