"""Which device a trainer puts its model on: ``device=None`` is CUDA when available (else the CPU); a device named
by the user is checked against what this machine has, so ``device="cuda"`` on a CPU-only build is one line that
names ``device=`` and the devices there are, not torch's ``AssertionError`` from deep inside ``model.to``.

Example:
    >>> as_device("cpu")
    device(type='cpu')
    >>> "cpu" in available_devices()
    True
"""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The device names this machine can train on: ``cpu``, then ``cuda`` and ``cuda:i`` per GPU, ``mps``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if _mps_available():
        found.append("mps")
    return found


def _present(where: torch.device) -> bool:
    if where.type == "cpu":
        return True
    if where.type == "cuda":
        return torch.cuda.is_available() and (where.index is None or where.index < torch.cuda.device_count())
    if where.type == "mps":
        return _mps_available()
    backend = getattr(torch, where.type, None)  # other accelerators (xpu, ...): their own is_available()
    is_available = getattr(backend, "is_available", None)
    return bool(is_available()) if callable(is_available) else True


def as_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` this machine has; None: :func:`default_device`.

    Raises:
        ValueError: a name torch does not know, or a device this machine does not have (the message names
            ``device=`` and the devices there are).
    """
    if device is None:
        return default_device()
    there = ", ".join(available_devices())
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not allowed: use one of {there} (or None: CUDA when available, "
                         f"else the CPU)") from None
    if not _present(where):
        raise ValueError(f"device={str(device)!r} is not available on this machine: use one of {there} (or None: "
                         f"CUDA when available, else the CPU)")
    return where
