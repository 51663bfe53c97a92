"""Which rule should ``lr-find`` read off the range test? Measure it: for each config and seed, run the LR range
test, read every candidate rule's suggestion off that one curve (and each rule's final suggestion after
``find_lr``'s doctor check), then train at every suggestion and at a 5-rate grid around the config's own rate as
one population sweep, and report how far each rule's test accuracy is from the grid's best.

    OMP_NUM_THREADS=1 python benchmarks/lr_rule.py --seeds 0,1 --out /tmp/lr_rule

The grid's best is the best seed-mean accuracy over the 5 grid rates; a rule's accuracy is the seed-mean of the
runs at its (per-seed) suggestion; the gap is their difference in test-accuracy points. The raw results go to
``OUT/results.json``; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from trainwell.config import load_config
from trainwell.lr_find import find_lr
from trainwell.sweep import sweep
from trainwell.train.lr_range import RULES, rule_for

ROOT = Path(__file__).resolve().parents[1]
FAST = ["doctor.preflight=false", "doctor.monitor_every=0", "report.enabled=false", "train.checkpoint_every=1000",
        "train.checkpoint_minutes=1000"]
CONFIGS = {  # name -> (config file or None for the defaults, extra overrides)
    "mnist1d-cnn (default, Adam, one-cycle)": (None, []),
    "mnist1d-mlp (Adam, constant)": ("configs/mnist1d-mlp.toml", []),
    "digits-cnn (8x8 digits, Adam, cosine)": ("configs/digits-cnn.toml", []),
    "spirals-mlp (SGD momentum, constant)": ("configs/spirals-mlp.toml", []),
}
ALL = (*RULES, "auto")  # "auto": minimum/3 under an annealing schedule, minimum/10 otherwise (rule_for)
GRID_FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)  # the grid: the config's own rate times these


def measure(path: str | None, extra: list[str], seed: int, out: Path, epochs: int | None) -> dict:
    """One config and seed: every rule's suggestion and the test accuracy at each suggestion and grid rate."""
    sets = [*FAST, *extra, f"train.seed={seed}"] + ([f"train.epochs={epochs}"] if epochs else [])
    cfg = load_config(ROOT / path if path else None, sets)
    tic = time.perf_counter()
    found = {rule: find_lr(cfg, rule=rule) for rule in RULES}
    curves = {json.dumps(f.range.candidates, sort_keys=True) for f in found.values()}
    assert len(curves) == 1, "the range test is deterministic: every rule must read the same curve"
    find_s = (time.perf_counter() - tic) / len(RULES)
    grid = [float(f"{cfg.optim.lr * k:.3g}") for k in GRID_FACTORS]
    final = {rule: f.suggestion for rule, f in found.items()}
    final["auto"] = final[rule_for(cfg.optim.schedule)]  # what lr-find's default reads for this config's schedule
    rates = sorted(set(grid) | set(final.values()))
    tic = time.perf_counter()
    res = sweep(cfg, {"optim.lr": rates}, out=out, quiet=True, force=True)
    acc = {row["optim.lr"]: row["test_acc"] for row in res.rows}
    return {"seed": seed, "default_lr": cfg.optim.lr, "grid": grid, "raw": found[RULES[0]].range.candidates,
            "final": final, "acc": {str(k): v for k, v in acc.items()}, "mode": res.mode,
            "find_s": round(find_s, 2), "sweep_s": round(time.perf_counter() - tic, 1)}


def summarize(name: str, runs: list[dict]) -> dict:
    """Seed-mean accuracy per grid rate and per rule, and each rule's gap to the grid's best (points)."""
    grid = runs[0]["grid"]
    grid_mean = {lr: statistics.mean(r["acc"][str(lr)] for r in runs) for lr in grid}
    best_lr = max(grid_mean, key=grid_mean.__getitem__)
    rules = {}
    for rule in ALL:
        accs = [r["acc"][str(r["final"][rule])] for r in runs]
        rules[rule] = {"lrs": [r["final"][rule] for r in runs], "acc": statistics.mean(accs),
                       "gap": 100 * (grid_mean[best_lr] - statistics.mean(accs))}
    return {"config": name, "grid_mean": grid_mean, "best_lr": best_lr, "rules": rules}


def table(summaries: list[dict]) -> str:
    lines = ["| config | grid (seed-mean test acc %) | best | " + " | ".join(ALL) + " |",
             "|---|---|---|" + "---|" * len(ALL)]
    for s in summaries:
        grid = ", ".join(f"{lr:g}: {100 * a:.1f}" for lr, a in s["grid_mean"].items())
        cells = [f"{'/'.join(f'{lr:.2g}' for lr in v['lrs'])} → {100 * v['acc']:.1f} ({-v['gap']:+.1f})"
                 for v in s["rules"].values()]
        lines.append(f"| {s['config']} | {grid} | {s['best_lr']:g}: {100 * s['grid_mean'][s['best_lr']]:.1f} | "
                     + " | ".join(cells) + " |")
    worst = {rule: max(s["rules"][rule]["gap"] for s in summaries) for rule in ALL}
    mean = {rule: statistics.mean(s["rules"][rule]["gap"] for s in summaries) for rule in ALL}
    lines.append("| **worst gap (points)** | | | " + " | ".join(f"{worst[r]:.1f}" for r in ALL) + " |")
    lines.append("| **mean gap (points)** | | | " + " | ".join(f"{mean[r]:.1f}" for r in ALL) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    ap.add_argument("--configs", default=None, help="comma-separated indices into the config list (default all)")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs (a quick smoke run)")
    ap.add_argument("--out", default="/tmp/lr_rule", help="folder for the sweeps and results.json")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = list(CONFIGS)
    if args.configs:
        names = [names[int(i)] for i in args.configs.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    for c, name in enumerate(names):
        path, extra = CONFIGS[name]
        for seed in seeds:
            key = f"{name} | seed {seed}"
            if key not in results:  # a rerun continues where an interrupted one stopped
                results[key] = measure(path, extra, seed, out / f"sweep-{c}-{seed}", args.epochs)
                (out / "results.json").write_text(json.dumps(results, indent=1))
            r = results[key]
            if "auto" not in r["final"]:  # measured before the "auto" rule existed: it picks one of the others
                schedule = load_config(ROOT / path if path else None, extra).optim.schedule
                r["final"]["auto"] = r["final"][rule_for(schedule)]
            print(f"{key}: find {r['find_s']} s, sweep {r['sweep_s']} s ({r['mode']}); suggestions {r['final']}",
                  flush=True)
    summaries = [summarize(n, [results[f"{n} | seed {s}"] for s in seeds]) for n in names]
    (out / "summary.json").write_text(json.dumps(summaries, indent=1))
    print(table(summaries))


if __name__ == "__main__":
    main()
