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


def sweep_members_equal_fits(workdir, cfg: Config, grid: dict, seeds: int = 1, epochs: int | None = None) -> list:
    """Sweep ``grid`` x ``seeds`` into ``workdir/sw`` as one population, assert that every member's per-epoch
    training and validation loss equals a separate ``fit`` of its settings (to 1e-5), and return the sweep's
    metrics lines (``member`` gives each line's member)."""
    import pytest

    from trainwell.pipeline import fit
    from trainwell.rundir import read_jsonl
    from trainwell.sweep import combinations, sweep

    res = sweep(cfg, grid, seeds=seeds, out="sw")
    members = combinations(cfg, grid, seeds)
    assert res.mode == "population" and len(res.rows) == len(members)
    lines = read_jsonl(workdir / "sw" / "metrics.jsonl")
    for m, (_, member_cfg) in enumerate(members):
        ref = read_jsonl(fit(member_cfg, out=f"ref{m}", quiet=True).run_dir / "metrics.jsonl")
        mine = [r for r in lines if r["member"] == m]
        assert len(mine) == len(ref) == (epochs or len(ref))
        assert [a["train_loss"] for a in ref] == pytest.approx([b["train_loss"] for b in mine], abs=1e-5)
        assert [a["val_loss"] for a in ref] == pytest.approx([b["val_loss"] for b in mine], abs=1e-5)
    return lines
