"""``trainwell sweep``: train every combination of a grid (and several seeds) as one population when the
settings allow, one model after another when they do not, and tabulate the results.

Both modes go through :mod:`trainwell.pipeline` (:func:`~trainwell.pipeline.fit_population` or
:func:`~trainwell.pipeline.fit`), so every member gets a fit's run directory (``member-<i>/``), the same stopping
criteria, guards, metrics and summary. Population keys: ``train.seed``, ``optim.lr``, ``optim.weight_decay``,
``model.hidden`` (MLP widths), ``data.label_noise``, ``data.corrupt_seed`` and the ``init.*`` settings (each
member starts from its own initialization). Any other grid key, BatchNorm,
dropout-style noise, Adagrad, penalties, augmentation (see :func:`~trainwell.pipeline.population_blocker`) fall
back to sequential ``fit`` runs, and the sweep's summary says why. ``resume=True`` continues an interrupted sweep
in its folder (the population from its checkpoint; sequential members from theirs). ``backend="ray"`` runs the
members (or populations of them) as Ray tasks (:mod:`trainwell.ray_backend`) and writes the same folder.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from trainwell.config import Config, check_key, config_from_dict, parse_override, read_toml, to_toml
from trainwell.errors import ConfigError, ParameterError, TrainwellError
from trainwell.manifest import record
from trainwell.runclaim import Claim
from trainwell.rundir import RunDir, atomic_write_json, atomic_write_text, read_jsonl
from trainwell.runlock import run_kind
from trainwell.sweep_labels import shared_labels


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
            raise ParameterError("grid", item, "is not allowed: use key=v1,v2,... e.g. optim.lr=0.1,0.01")
        key, raw = item.split("=", 1)
        if key.strip() in grid:
            raise ParameterError("grid", key.strip(), f"is given twice: list all its values in one item, "
                                                      f"e.g. {key.strip()}=v1,v2")
        grid[key.strip()] = [parse_override(f"{key}={v}")[1] for v in split_values(raw)]
        if not grid[key.strip()]:
            raise ParameterError("grid", item, "has no values")
    return grid


MAX_MEMBERS = 10_000  # members of one sweep (grid combinations x seeds); documented in the README


def members_count(grid: dict[str, list], seeds: int) -> int:
    """How many members ``grid`` x ``seeds`` makes (the product of the value counts), without building any."""
    return math.prod(len(values) for values in grid.values()) * seeds


def check_size(grid: dict[str, list], seeds: int) -> int:
    """Refuse, in one line with the count, a sweep of more than :data:`MAX_MEMBERS` members."""
    n = members_count(grid, seeds)
    if n > MAX_MEMBERS:
        sizes = " x ".join([str(len(v)) for v in grid.values()] + ([f"{seeds} seeds"] if seeds > 1 else []))
        raise ConfigError(f"this sweep has {n:,} members ({sizes}): the limit is {MAX_MEMBERS:,} members per sweep; "
                          f"use fewer grid values or seeds, or split it into several sweeps")
    return n


def _refuse_duplicates(combos: list[tuple[dict, Config]]) -> None:
    """Two members with the same resolved config would train the same model twice (and count twice in a
    mean over seeds): ``--grid optim.lr=0.1,1e-1``, or ``--grid train.seed=0,1 --seeds 2`` (seeds 0, 1, 1, 2)."""
    seen: dict[str, int] = {}
    for m, (settings, c) in enumerate(combos):
        first = seen.setdefault(c.hash(), m)
        if first != m:
            same = ", ".join(f"{k}={v}" for k, v in settings.items())
            raise ParameterError("grid", same, f"repeats member {first}'s settings (members {first} and {m} would "
                                               f"train the same model): give each value once, and with --seeds > 1 "
                                               f"no train.seed grid that overlaps the seeds it adds")


def combinations(cfg: Config, grid: dict[str, list], seeds: int) -> list[tuple[dict, Config]]:
    """Every grid combination x seed, as (settings, resolved config); unknown keys and invalid values fail like
    --set (an unknown key with the nearest known one and the allowed ones). A sweep over :data:`MAX_MEMBERS` is
    refused before any config is built."""
    check_size(grid, seeds)
    keys = list(grid)
    for key in keys:  # a typo is named with the nearest key and the allowed ones, as --set names it
        check_key(key)
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
                        raise ParameterError("grid", key, "is not a config field")
                    node = node[part]
                node[last] = value  # a key check_key passed: a field, or an entry of a free table (data.options)
            out.append((settings, config_from_dict(raw)))
    return out


def population_blocker(cfg: Config, grid: dict[str, list], seeds: int = 1) -> str | None:
    """Why this sweep cannot run as one population (None if it can)."""
    from trainwell.pipeline import POPULATION_KEYS
    from trainwell.pipeline import population_blocker as configs_blocker

    other = sorted(set(grid) - set(POPULATION_KEYS))
    if other:
        return f"grid key {other[0]!r} changes more than a member's settings"
    return configs_blocker([c for _, c in combinations(cfg, grid, seeds)])


@dataclass
class SweepResult:
    rows: list[dict]
    mode: str
    wall_s: float
    out: Path
    skipped: list[str]
    report: Path | None = None  # the sweep's report.html (None with report.enabled = false)


def _row(settings: dict, summary: dict, history: list[dict]) -> dict:
    """One results row: the member's settings, final metrics, epochs and where it stopped."""
    stopped = not summary["stop_reason"].startswith("completed")
    return {**{k: str(v) if isinstance(v, list) else v for k, v in settings.items()}, **summary["final"],
            "epochs": summary["epochs"], "stop_epoch": summary["epochs"] - 1 if stopped else None,
            "failed": summary["failed"], "history": history}


def run_population(combos: list[tuple[dict, Config]], out: Path, quiet: bool = True,
                   resume: bool = False) -> tuple[list[dict], list[str]]:
    """Train all ``combos`` as one population; one row per member, and the checks that could not run."""
    from trainwell.pipeline import fit_population  # torch: imported when training starts

    resume = resume and RunDir(out).last.exists()  # killed before the first checkpoint: start over
    res = fit_population([c for _, c in combos], out=out, resume=resume, quiet=quiet, force=True)  # claimed
    rows = [_row(settings, r.summary, read_jsonl(r.run_dir / "metrics.jsonl"))
            for (settings, _), r in zip(combos, res.members, strict=True)]
    return rows, res.skipped


def run_sequential(combos: list[tuple[dict, Config]], out: Path, quiet: bool = True,
                   resume: bool = False) -> list[dict]:
    """Train ``combos`` one after another with ``fit``; with ``resume`` finished members are kept and
    interrupted ones continue from their checkpoints."""
    from trainwell.pipeline import fit
    from trainwell.train.progress import labelled

    rows = []
    for i, (settings, c) in enumerate(combos):
        run = RunDir(out / f"member-{i}")
        with labelled(f"member {i + 1}/{len(combos)} (member-{i})"):  # the progress names the member it shows
            if resume and run.summary.exists():
                summary = run.read_summary()
            elif resume and run.last.exists():
                summary = fit(c, resume=run.path, quiet=quiet).summary
            else:
                summary = fit(c, out=run.path, force=True, quiet=quiet).summary
        rows.append(_row(settings, summary, read_jsonl(run.metrics)))
    return rows


BACKENDS = ("local", "ray")


def sweep(cfg: Config, grid: dict[str, list], seeds: int = 1, out: str | Path | None = None,
          sequential: bool = False, quiet: bool = True, force: bool = False, resume: bool = False,
          backend: str = "local", address: str | None = None) -> SweepResult:
    """Run the sweep and write ``out``: config.toml, sweep.json (grid and seeds), results.csv/json,
    metrics.jsonl (one line per member and epoch, with its ``member`` index), summary.json, and each member's
    run directory ``member-<i>/``. With ``resume``, continue the sweep already in ``out``.

    ``backend = "ray"`` trains the members as Ray tasks (:mod:`trainwell.ray_backend`; ``address``: a running
    cluster, ``auto`` or ``HOST:PORT``); the folder it writes is the local backend's."""
    if seeds < 1:
        raise ParameterError("seeds", seeds, "is not allowed: use an integer >= 1")
    if backend not in BACKENDS:
        raise ParameterError("backend", backend, f"is not allowed: use one of {', '.join(BACKENDS)}")
    if backend == "ray":
        from trainwell.ray_backend import require_ray

        require_ray()  # before any folder is touched
    elif address is not None:
        raise ParameterError("address", address, "names a Ray cluster: use it with the ray backend")
    combos = combinations(cfg, grid, seeds)
    _refuse_duplicates(combos)
    from trainwell.pipeline import inert_model_keys  # torch: after the arguments are checked

    inert = inert_model_keys(combos)
    if inert:
        raise ParameterError("grid", inert[0], f"changes nothing for model.kind = {cfg.model.kind!r}: every value "
                                               f"builds the same model; sweep a key this model uses")
    from trainwell.pipeline.build import check_validation_split

    checked = set()
    for _, member in combos:  # a stopping criterion with no validation split to read: before the folder is claimed
        key = (repr(member.data), repr(member.stop))
        if key not in checked:
            checked.add(key)
            check_validation_split(member)
    if resume:
        claim = Claim.resume(out)
    else:
        claim = Claim.take("sweep", out, force=force, name=f"{cfg.name}-sweep", config_hash=cfg.hash())
    with claim:
        result = _sweep_into(claim, cfg, grid, combos, seeds, sequential, quiet, resume, backend, address)
    from trainwell.pipeline.write import write_group_report

    result.report = write_group_report(cfg, result.out)
    return result


def run_ray(combos: list[tuple[dict, Config]], out: Path, population: bool, address: str | None, quiet: bool,
            resume: bool) -> tuple[list[dict], list[str], int]:
    """Train ``combos`` as Ray tasks; one row per member (a member whose task failed twice: its settings,
    ``failed`` and the ``error``), the checks populations skipped, and the number of tasks."""
    from trainwell import ray_backend

    done = ray_backend.run(combos, out, population=population, address=address, quiet=quiet, resume=resume)
    rows = []
    for (settings, _), result in zip(combos, done["results"], strict=True):
        if "error" in result:
            rows.append({**{k: str(v) if isinstance(v, list) else v for k, v in settings.items()}, "failed": True,
                         "error": result["error"], "history": []})
        else:
            rows.append(_row(settings, result["summary"], result["history"]))
    return rows, done["skipped"], done["tasks"]


def _sweep_into(claim: Claim, cfg: Config, grid: dict[str, list], combos, seeds: int, sequential: bool,
                quiet: bool, resume: bool, backend: str = "local", address: str | None = None) -> SweepResult:
    out = claim.path
    if not resume:
        atomic_write_text(out / "config.toml", to_toml(cfg))
        atomic_write_json(out / "sweep.json", {"grid": grid, "seeds": seeds, "sequential": sequential})
    claim.started()
    blocker = "asked for sequential runs" if sequential else population_blocker(cfg, grid, seeds)
    if not quiet:  # the user learns how the sweep will run before it does
        how = "as one population" if blocker is None else f"one after another ({blocker})"
        print(f"sweep: {len(combos)} members, trained {how}", file=sys.stderr, flush=True)
    tic = time.perf_counter()
    if backend == "ray":
        rows, skipped, tasks = run_ray(combos, out, blocker is None, address, quiet, resume)
        kind = "populations" if blocker is None else f"one member each: {blocker}"
        mode = f"ray ({tasks} tasks, {kind})"
    elif blocker is None:
        rows, skipped = run_population(combos, out, quiet, resume)
        mode = "population"
    else:
        rows, skipped, mode = run_sequential(combos, out, quiet, resume), [], f"sequential ({blocker})"
    wall = time.perf_counter() - tic
    metrics = "".join(json.dumps({"member": m, **h}) + "\n" for m, r in enumerate(rows) for h in r["history"])
    atomic_write_text(out / "metrics.jsonl", metrics)
    table = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    atomic_write_json(out / "results.json", table)
    fields = list(dict.fromkeys(k for r in table for k in r))  # a failed member's row has other keys
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(table)
    record(out / "results.csv")
    atomic_write_json(out / "summary.json", {"mode": mode, "members": len(rows), "wall_s": round(wall, 3),
                                             "grid": {k: [str(v) for v in vs] for k, vs in grid.items()},
                                             "seeds": seeds, "skipped_checks": skipped, "backend": backend,
                                             "failed_members": [m for m, r in enumerate(table)
                                                                if "error" in r or r.get("failed")],
                                             "results": table, "best_val_acc": _best_val_acc(table),
                                             **shared_labels(out, len(rows))})
    return SweepResult(rows=table, mode=mode, wall_s=wall, out=out, skipped=skipped)


def _best_val_acc(table: list[dict]) -> float | None:
    """The best member's validation accuracy; None when no member has one (no validation split, or every member
    failed)."""
    values = [r["val_acc"] for r in table if isinstance(r.get("val_acc"), (int, float))
              and math.isfinite(r["val_acc"])]
    return max(values) if values else None


def _read_spec(path: Path) -> dict:
    """A sweep's ``sweep.json`` (its grid, seeds and mode), each field checked: a damaged or edited file is named
    in one line, not met as a traceback."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TrainwellError(f"{path}: not valid JSON ({e}); this file is written by trainwell sweep: restore it, "
                             f"or start the sweep again") from None
    problem = ("not a JSON object" if not isinstance(spec, dict) else
               "grid: not an object of key: [values]" if not isinstance(spec.get("grid"), dict)
               or not all(isinstance(v, list) and v for v in spec["grid"].values()) else
               "seeds: not an integer >= 1" if type(spec.get("seeds")) is not int or spec["seeds"] < 1 else
               "sequential: not true or false" if not isinstance(spec.get("sequential"), bool) else None)
    if problem is not None:
        raise TrainwellError(f"{path}: {problem} (this file is written by trainwell sweep: restore it, or start the "
                             f"sweep again)")
    return spec


def resume_sweep(out: str | Path, quiet: bool = True, backend: str = "local",
                 address: str | None = None) -> SweepResult:
    """Continue the sweep in ``out`` (its config.toml and sweep.json say what it was)."""
    out = Path(out)
    if not (out / "sweep.json").exists() or not (out / "config.toml").exists():
        missing = " and ".join(name for name in ("sweep.json", "config.toml") if not (out / name).exists())
        what = ("does not exist" if not out.exists() else
                f"a trainwell fit run, not a sweep folder: continue it with `trainwell fit --resume {out}`"
                if run_kind(out) == "fit" else f"not a sweep folder (no {missing})")
        raise TrainwellError(f"{out}: {what}; sweep --resume needs the folder trainwell sweep wrote")
    spec = _read_spec(out / "sweep.json")
    cfg = config_from_dict(read_toml(out / "config.toml"))
    _check_members_data(out)
    return sweep(cfg, spec["grid"], seeds=spec["seeds"], out=out, sequential=spec["sequential"], quiet=quiet,
                 resume=True, backend=backend, address=address)


def _check_members_data(out: Path) -> None:
    """Refuse to resume when a member's data file changed since it started, as ``fit --resume`` refuses (each
    member records its file in its own data.json; a grid may give members different files)."""
    from trainwell.pipeline.data_fingerprint import check_unchanged

    for member in sorted(out.glob("member-*")):
        if (member / "config.toml").is_file():
            check_unchanged(member, config_from_dict(read_toml(member / "config.toml")).data.root)


def __getattr__(name: str):
    if name == "POPULATION_KEYS":  # the pipeline (torch) is imported when a sweep runs, not to check its arguments
        from trainwell.pipeline import POPULATION_KEYS

        return POPULATION_KEYS
    raise AttributeError(f"module 'trainwell.sweep' has no attribute {name!r}")


__all__ = ["BACKENDS", "POPULATION_KEYS",  # noqa: F822 (POPULATION_KEYS comes from the module's __getattr__)
           "SweepResult", "parse_grid", "resume_sweep", "sweep"]
