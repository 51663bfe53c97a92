"""What many tests share: one tiny run configuration and one boring network.

``tiny()`` is a spirals MLP small enough to train in a second, as ``--set``-style ``key=value`` settings (later
settings win, so a test appends what it changes); ``cli(settings)`` spells them as command-line arguments.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.config import Config, load_config


def tiny(n_per_class: int = 40, hidden: tuple[int, ...] = (8,), epochs: int | None = 2, *, name: str | None = "tiny",
         quiet: bool = True) -> list[str]:
    """A spirals MLP: ``n_per_class`` points per arm, hidden widths ``hidden``, ``epochs`` epochs (None: the
    default), the run named ``name`` (None: the default); ``quiet`` switches off the report and the pre-flight."""
    settings = ["data.name=spirals", f"data.options={{n_per_class = {n_per_class}}}", "model.kind=mlp",
                f"model.hidden=[{','.join(str(h) for h in hidden)}]"]
    if epochs is not None:
        settings.append(f"train.epochs={epochs}")
    if name is not None:
        settings.append(f"name={name}")
    if quiet:
        settings += ["report.enabled=false", "doctor.preflight=false"]
    return settings


def cli(settings: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for setting in settings for arg in ("--set", setting)]


def tiny_config(*more: str, **kwargs) -> Config:
    """The resolved :class:`Config` of ``tiny(**kwargs)`` followed by the settings ``more``."""
    return load_config(None, [*tiny(**kwargs), *more])


def boring_net(inputs: int = 2, hidden: int = 16, classes: int = 3, seed: int | None = None) -> nn.Module:
    """Linear - ReLU - Linear; initialized from ``seed`` when given, else from torch's global generator."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))
