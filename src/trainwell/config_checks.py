"""The value checks of :mod:`trainwell.config`'s ``validate`` methods: each raises a one-line
:class:`~trainwell.errors.ConfigError` naming the key, the value and what is allowed."""

from __future__ import annotations

import math
import re

from trainwell.errors import ConfigError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_+=,@-][A-Za-z0-9._+=,@-]{0,99}")
MAX_NAME = 100
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer


def _check_seed(key: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{key} = {value} is not allowed: use an integer in [0, 2**63 - 1]")


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        allowed = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ConfigError(f"{key} = {value} is not allowed: use {allowed}")


def _check_range(key, value, lo, hi, lo_open=False, hi_open=False) -> None:
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{key} = {value} is not allowed: use a number in {interval}")
