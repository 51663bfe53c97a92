"""Many trainings of one experiment as vmapped populations: :func:`train_many`.

An experiment that trains several configs (seeds, widths, rates, weight decays, label-noise draws) hands them all
to :func:`train_many`. Configs that differ only in what a population member may differ in
(:data:`trainwell.pipeline.POPULATION_KEYS`) and that a population can train
(:func:`trainwell.pipeline.population_blocker`) are grouped and trained as one population by
:func:`trainwell.pipeline.fit_population` - the loop and learners that ``trainwell sweep`` uses - and every other
config by :func:`trainwell.pipeline.fit`, one after another. Each training gets a fit's run directory
``workdir/<name>`` either way, and the results come back in the order given, as :class:`~trainwell.lab.base.Trained`.

Members of different MLP widths share one population: the narrower ones sit zero-padded in the widest
architecture (their padding stays exactly zero). Measured in RESULTS section 24 against grouping by width.

``sequential_training()`` turns the grouping off within a block (every config trained by ``fit``): the reference
the population results are compared with.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainwell.config import Config, load_config
from trainwell.lab import base
from trainwell.rundir import read_jsonl
from trainwell.train.callbacks import StepLosses

_sequential = False


@contextlib.contextmanager
def sequential_training():
    """Within the block, :func:`train_many` trains every config on its own with ``fit`` (no populations)."""
    global _sequential
    old, _sequential = _sequential, True
    try:
        yield
    finally:
        _sequential = old


def _group_key(cfg: Config) -> str:
    from trainwell.pipeline import POPULATION_KEYS
    from trainwell.pipeline.population import _flatten

    flat = _flatten(cfg.to_dict())
    depth = len(cfg.model.hidden)  # widths may differ within a population, the number of layers may not
    return repr([depth, *sorted((k, repr(v)) for k, v in flat.items() if k not in POPULATION_KEYS and k != "name")])


def groups(configs: Sequence[Config]) -> list[list[int]]:
    """Indices of ``configs`` grouped into populations (in order of first appearance); a config that cannot train
    in a population, or that is alone in its group, is a group of one."""
    from trainwell.pipeline import population_blocker

    keyed: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        keyed.setdefault(_group_key(c), []).append(i)
    out = []
    for idx in keyed.values():
        if len(idx) > 1 and population_blocker([configs[i] for i in idx]) is None:
            out.append(idx)
        else:
            out.extend([i] for i in idx)
    return sorted(out, key=lambda g: g[0])


def _log(name: str, trained: base.Trained, wall: float) -> None:
    if base._member_log is None:
        return
    f = trained.final
    acc = ", ".join(f"{k} {base.pct(f.get(k + '_acc'))}" for k in ("train", "test") if f.get(k + "_acc") is not None)
    base._member_log(f"    {name}: {trained.summary['epochs']} epochs, {acc} ({wall:.1f} s)")


def _population(cfgs: list[Config], names: list[str], root: Path, step_losses: bool) -> list[base.Trained]:
    from trainwell.pipeline import fit_population

    steps = StepLosses()
    res = fit_population(cfgs, out=root / f"population-{names[0]}", member_dirs=[root / n for n in names],
                         callbacks=[steps] if step_losses else (), force=True)  # the lab run's own folder
    out = []
    for m, (c, n, r) in enumerate(zip(cfgs, names, res.members, strict=True)):
        t = base.Trained(r.summary, read_jsonl(r.run_dir / "metrics.jsonl"), r.model, r.run_dir, c,
                         steps.member(m, r.summary["steps"]) if step_losses else None)
        _log(n, t, res.wall_s / len(cfgs))
        out.append(t)
    return out


def _alone(overrides: list[str], root: Path, name: str, step_losses: bool) -> base.Trained:
    steps = StepLosses()
    t = base.train(overrides, root, name, callbacks=[steps] if step_losses else ())
    if step_losses:
        t.step_losses = list(steps.losses)
    return t


def train_many(runs: Sequence[tuple[list[str], str]], workdir: str | Path | None,
               step_losses: bool = False) -> list[base.Trained]:
    """Train every ``(overrides, name)`` of ``runs`` (each the config ``LAB_SETTINGS + overrides``, as
    :func:`~trainwell.lab.base.train` builds it) into ``workdir/<name>``; populations where the configs allow
    (see the module docstring), ``fit`` otherwise. Returns one :class:`~trainwell.lab.base.Trained` per run, in
    order; with ``step_losses``, each carries its training loss at every step."""
    names = [n for _, n in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"train_many: run names must be unique (each is a run directory); got {names}")
    cfgs = [load_config(None, [*base.LAB_SETTINGS, f"name=\"lab-{n}\"", *o]) for o, n in runs]
    parts = [[i] for i in range(len(runs))] if _sequential else groups(cfgs)
    with contextlib.ExitStack() as stack:
        root = Path(workdir) if workdir is not None else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trainwell-lab-")))
        done: dict[int, base.Trained] = {}
        for part in parts:
            if len(part) == 1:
                i = part[0]
                done[i] = _alone(runs[i][0], root, names[i], step_losses)
            else:
                for i, t in zip(part, _population([cfgs[i] for i in part], [names[i] for i in part], root,
                                                  step_losses), strict=True):
                    done[i] = t
        return [done[i] for i in range(len(runs))]
