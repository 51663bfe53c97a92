"""``trainwell sweep``: train every combination of a grid (and several seeds) as one population when the
architecture allows, one model after another when it does not, and tabulate the results.

Population keys: ``train.seed``, ``optim.lr``, ``optim.weight_decay``, ``model.hidden`` (MLP widths),
``data.label_noise`` and ``data.corrupt_seed`` (each member its own label-noise draw). Any other key, BatchNorm,
dropout-style noise, a plateau schedule, RMSprop, penalties or augmentation fall back to sequential ``fit`` runs.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainwell import init as initializers
from trainwell.config import Config, config_from_dict, parse_override, to_toml
from trainwell.data import corrupt
from trainwell.errors import ConfigError
from trainwell.nn.models import build_model
from trainwell.pipeline import fit, load_data, resolve_device
from trainwell.runclaim import Claim
from trainwell.rundir import atomic_write_json, atomic_write_text, read_jsonl
from trainwell.train import progress as progress_mod
from trainwell.train.population import Population, embed_state, schedule_factors
from trainwell.train.stopping import EarlyStopping
from trainwell.train.trainer import loss_function

POPULATION_KEYS = {"train.seed", "optim.lr", "optim.weight_decay", "model.hidden", "data.label_noise",
                   "data.corrupt_seed"}


def split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` on top-level commas (commas inside [...] or {...} stay)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["optim.lr=0.1,0.01", "model.hidden=[32],[64]"]`` -> {"optim.lr": [0.1, 0.01], ...}."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r} is not allowed: use key=v1,v2,... e.g. --grid optim.lr=0.1,0.01")
        key, raw = item.split("=", 1)
        if key.strip() in grid:
            raise ConfigError(f"--grid {key.strip()} is given twice: list all its values in one --grid, "
                              f"e.g. --grid {key.strip()}=v1,v2")
        grid[key.strip()] = [parse_override(f"{key}={v}")[1] for v in split_values(raw)]
        if not grid[key.strip()]:
            raise ConfigError(f"--grid {item!r} has no values")
    return grid


def combinations(cfg: Config, grid: dict[str, list], seeds: int) -> list[tuple[dict, Config]]:
    """Every grid combination x seed, as (settings, resolved config); invalid values fail like --set."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        for s in range(seeds):
            settings = dict(zip(keys, values, strict=True))
            if seeds > 1 or "train.seed" not in settings:
                settings["train.seed"] = settings.get("train.seed", cfg.train.seed) + s
            raw = cfg.to_dict()
            for key, value in settings.items():
                node = raw
                *path, last = key.split(".")
                for part in path:
                    if not isinstance(node.get(part), dict):
                        raise ConfigError(f"--grid key {key!r} is not a config field")
                    node = node[part]
                if last not in node:
                    raise ConfigError(f"--grid key {key!r} is not a config field")
                node[last] = value
            out.append((settings, config_from_dict(raw)))
    return out


def population_blocker(cfg: Config, grid: dict[str, list]) -> str | None:
    """Why this sweep cannot run as one population (None if it can)."""
    other = sorted(set(grid) - POPULATION_KEYS)
    if other:
        return f"grid key {other[0]!r} changes more than a member's settings"
    if "model.hidden" in grid and cfg.model.kind != "mlp":
        return "width sweeps are for MLPs"
    if "model.hidden" in grid and cfg.model.activation not in ("relu", "tanh", "leaky_relu", "linear"):
        return f"width masking needs act(0) = 0; {cfg.model.activation!r} does not have it"
    if "model.hidden" in grid and len({len(h) for h in grid["model.hidden"]} | {len(cfg.model.hidden)}) > 1:
        return "every width setting must have the same number of hidden layers"
    if cfg.model.norm == "batch":
        return "BatchNorm's running statistics cannot be vmapped"
    if cfg.model.dropout_keep < 1 or cfg.model.dropout_mode == "uout" or cfg.model.activation == "drop_activation":
        return "dropout-style noise would not match one-at-a-time runs"
    if cfg.model.l0 or cfg.model.sdr or cfg.model.skip_io:
        return "gated, stochastic or skip-connected layers are trained one at a time"
    r = cfg.regularize
    if r.l1 or r.l2 or r.activity or r.l0 or r.max_norm:
        return "penalties and constraints are applied one model at a time"
    if cfg.augment.kind != "none" or cfg.augment.input_noise:
        return "augmentation is applied one model at a time"
    if cfg.optim.name not in ("sgd", "momentum", "adam"):
        return f"optimizer {cfg.optim.name!r} has no population version"
    if cfg.optim.schedule == "plateau":
        return "a plateau schedule depends on each member's validation loss"
    if cfg.train.trainable != "all":
        return "train.trainable = 'norm' is applied one model at a time"
    if set(cfg.stop.criteria) - {"early_stopping"}:
        return "only early stopping runs per member in a population"
    return None


@dataclass
class SweepResult:
    rows: list[dict]
    mode: str
    wall_s: float
    out: Path


def _member_state(cfg: Config, widest: Config, input_shape, classes) -> dict:
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, input_shape, classes)
    i = cfg.init
    initializers.apply(model, i.scheme, bias=i.bias, mode=i.mode, std=i.std, output_init=i.output_layer,
                       generator=torch.Generator().manual_seed(cfg.train.seed))
    wide = build_model(widest.model, input_shape, classes).state_dict()
    return embed_state(model.state_dict(), wide)


def _narrow(wide: dict[str, torch.Tensor], template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The top-left block of each wide tensor, shaped like the member's own architecture."""
    return {k: wide[k][tuple(slice(0, n) for n in v.shape)].clone() for k, v in template.items()}


def _write_member(path: Path, cfg: Config, history: list[dict], final: dict, state: dict, stop_epoch, wall: float,
                  dataset_meta) -> None:
    """A run directory like `fit`'s: config.toml, metrics.jsonl, summary.json, checkpoints/last.pt."""
    import trainwell
    from trainwell.rundir import RunDir, atomic_torch_save

    run = RunDir(path).create()
    atomic_write_text(run.config, to_toml(cfg))
    atomic_write_text(run.metrics, "".join(json.dumps(h) + "\n" for h in history))
    atomic_torch_save(run.last, {"model": state, "config": cfg.to_dict(), "epoch": history[-1]["epoch"]})
    val = [h for h in history if h.get("val_loss") is not None]
    atomic_write_json(run.summary, {
        "name": cfg.name, "config_hash": cfg.hash(), "dataset": cfg.data.name, "model": cfg.model.kind,
        "params": sum(v.numel() for v in state.values()), "epochs": len(history), "steps": history[-1]["step"],
        "stop_reason": f"early stopping at epoch {stop_epoch}" if stop_epoch is not None
        else f"completed {cfg.train.epochs} epochs",
        "best_epoch": min(val, key=lambda h: h["val_loss"])["epoch"] if val else None, "final": final,
        "doctor": [], "wall_s": round(wall, 3), "trainwell_version": trainwell.__version__,
        "torch_version": torch.__version__, "seed": cfg.train.seed, "population": True,
        "human_error": dataset_meta.human_error,
    })


def run_population(base: Config, combos: list[tuple[dict, Config]], quiet: bool = True,
                   out: Path | None = None) -> list[dict]:
    """Train all ``combos`` as one population; return one row of settings and final metrics per member."""
    device = resolve_device(base.train.device)
    splits, _ = load_data(combos[0][1])
    classes, shape = splits.meta.num_classes, splits.meta.input_shape
    widths = [c.model.hidden for _, c in combos]
    widest = config_from_dict({**base.to_dict(), "model": {**base.to_dict()["model"],
                                                           "hidden": [max(w) for w in zip(*widths, strict=True)]}})
    states = [_member_state(c, widest, shape, classes) for _, c in combos]
    labels = []
    for _, c in combos:
        y = splits.train[1]
        if c.data.label_noise > 0:
            y = corrupt.label_noise(y, c.data.label_noise, classes, c.data.corrupt_seed)
        labels.append(y)
    loss = loss_function(base.train.loss)
    o = base.optim
    tic = time.perf_counter()
    pop = Population(build_model(widest.model, shape, classes), states, [c.train.seed for _, c in combos], o.name,
                     [c.optim.lr for _, c in combos], [c.optim.weight_decay for _, c in combos], decay=o.decay,
                     momentum=o.momentum, nesterov=o.nesterov, betas=o.betas, eps=o.eps, loss=loss, device=device)
    steps_per_epoch = -(-len(splits.train[0]) // base.train.batch_size)
    factors, momenta = schedule_factors(o.schedule, o.name, epochs=base.train.epochs,
                                        steps_per_epoch=steps_per_epoch, momentum=o.momentum, betas=o.betas,
                                        step_size=o.step_size, gamma=o.gamma, min_lr=o.min_lr,
                                        warmup_fraction=o.warmup_fraction)
    s = base.stop
    es = (EarlyStopping("max" if s.monitor.endswith("acc") else "min", s.patience, s.min_delta, s.min_delta_relative)
          if "early_stopping" in s.criteria else None)
    results = pop.fit(splits.train, splits.val, base.train.epochs, base.train.batch_size, lr_factors=factors,
                      momenta=momenta,
                      early_stopping=es, monitor=s.monitor, restore_best=s.restore_best,
                      labels=torch.stack(labels), progress=None if quiet else progress_mod.auto(False))
    finals = {}
    for split, (x, y) in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(x):
            lo, acc = pop.evaluate(x, y)
            finals[split] = (lo.tolist(), acc.tolist())
    wall = time.perf_counter() - tic
    members_state = pop.state_dicts()
    rows = []
    for m, (settings, member_cfg) in enumerate(combos):
        row = {**{k: str(v) if isinstance(v, list) else v for k, v in settings.items()}}
        for split, (lo, acc) in finals.items():
            row[f"{split}_loss"], row[f"{split}_acc"] = lo[m], acc[m]
        if out is not None:
            template = build_model(member_cfg.model, shape, classes).state_dict()
            final = {f"{sp}_{k}": row.get(f"{sp}_{k}") for sp in ("train", "val", "test") for k in ("loss", "acc")}
            _write_member(out / f"member-{m}", member_cfg, results[m].history, final,
                          _narrow(members_state[m], template), results[m].stop_epoch, wall / len(combos),
                          splits.meta)
        row["epochs"] = len(results[m].history)
        row["stop_epoch"] = results[m].stop_epoch
        row["history"] = results[m].history
        rows.append(row)
    return rows


def run_sequential(combos: list[tuple[dict, Config]], out: Path, quiet: bool = True) -> list[dict]:
    rows = []
    for i, (settings, c) in enumerate(combos):
        res = fit(c, out=out / f"member-{i}", force=True, quiet=quiet)
        row = {**{k: str(v) if isinstance(v, list) else v for k, v in settings.items()}, **res.summary["final"],
               "epochs": res.summary["epochs"], "stop_epoch": res.summary["epochs"] - 1
               if res.summary["stop_reason"].startswith("early") else None}
        row["history"] = read_jsonl(res.run_dir / "metrics.jsonl")
        rows.append(row)
    return rows


def sweep(cfg: Config, grid: dict[str, list], seeds: int = 1, out: str | Path | None = None,
          sequential: bool = False, quiet: bool = True, force: bool = False) -> SweepResult:
    """Run the sweep and write ``out``: config.toml, results.csv/json, metrics.jsonl (one line per member and
    epoch, with its ``member`` index) and summary.json."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds} is not allowed: use an integer >= 1")
    combos = combinations(cfg, grid, seeds)
    with Claim.take("sweep", out, force=force, name=f"{cfg.name}-sweep", config_hash=cfg.hash()) as claim:
        return _sweep_into(claim, cfg, grid, combos, seeds, sequential, quiet)


def _sweep_into(claim: Claim, cfg: Config, grid: dict[str, list], combos, seeds: int, sequential: bool,
                quiet: bool) -> SweepResult:
    out = claim.path
    claim.started()
    blocker = "asked for sequential runs" if sequential else population_blocker(cfg, grid)
    tic = time.perf_counter()
    if blocker is None:
        rows, mode = run_population(cfg, combos, quiet, out), "population"
    else:
        rows, mode = run_sequential(combos, out, quiet), f"sequential ({blocker})"
    wall = time.perf_counter() - tic
    atomic_write_text(out / "config.toml", to_toml(cfg))
    metrics = "".join(json.dumps({"member": m, **h}) + "\n" for m, r in enumerate(rows) for h in r["history"])
    atomic_write_text(out / "metrics.jsonl", metrics)
    table = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    atomic_write_json(out / "results.json", table)
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    atomic_write_json(out / "summary.json", {"mode": mode, "members": len(rows), "wall_s": round(wall, 3),
                                             "grid": {k: [str(v) for v in vs] for k, vs in grid.items()},
                                             "seeds": seeds, "results": table,
                                             "best_val_acc": max((r.get("val_acc") or -math.inf) for r in table)})
    return SweepResult(rows=table, mode=mode, wall_s=wall, out=out)


__all__ = ["POPULATION_KEYS", "SweepResult", "parse_grid", "sweep"]
