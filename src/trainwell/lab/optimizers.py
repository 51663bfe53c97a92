"""optimizers: SGD, SGD + momentum, RMSprop, RMSprop + momentum and Adam on one task over several seeds — curves
with their spread, the run-to-run variance, and whether the lecture's ranking holds beyond that variance.

The lecture ("What is best then?", after Schaul, Antonoglou & Silver 2014, "Unit tests for stochastic
optimization"): "Adam, RMSprop seem to be slightly favorable; however, no best algorithm"; Jordan 2023, "Calibrated
chaos: variance between runs of neural network training is harmless and inevitable": differences smaller than the
run-to-run spread are not differences.

Optimizers are compared *tuned*: each trains the same MNIST-1D MLP from the same seeds at every rate of a small grid
(a population over rates x seeds, :func:`trainwell.sweep.sweep`), and each is represented by its rate with the best
mean validation accuracy (the test set plays no part in the choice). Untuned, plain SGD at a tenth of momentum's
effective step loses by construction; tuned, it does not have to. Verdict: the best adaptive method's test accuracy
minus plain SGD's, paired by seed (same initialization and batch order), Student's t interval over the seeds, above
0. Control: the adaptive methods replaced by plain SGD with SGD's grid (the method under test made equal to the
baseline).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trainwell.config import load_config
from trainwell.lab import base
from trainwell.sweep import sweep

NAME = "optimizers"
CLAIM = "Tuned adaptive methods (RMSprop, Adam) are slightly favorable to tuned plain SGD on the same task, by " \
        "more than the run-to-run spread; the full ranking is reported with its spread"
PAPER = "The lecture's 'What is best then?' (Schaul et al. 2014); Jordan 2023, Calibrated chaos"
CONTROL = "the adaptive methods replaced by plain SGD on SGD's rate grid: the method under test equals the baseline"
EXPECTED_S = {"quick": 4, "default": 58}
# quick: 2 seeds x 4 epochs, a t interval with 1 degree of freedom, and rates chosen after 4 epochs: it cannot decide
QUICK_DECIDES = False
LITERATURE = "Schaul, Antonoglou & Silver 2014 (unit tests, figs. 4-5): no optimizer is best on every test " \
             "function, the adaptive ones are robust to their rate; Wilson et al. 2017 (The marginal value of " \
             "adaptive methods): tuned SGD generalizes as well or better than Adam. Neither gives an MNIST-1D number"
OPTIMIZERS = {  # settings and a rate grid (a factor ~3 apart) around each method's usual default
    "sgd": (["optim.name=sgd"], [0.05, 0.15, 0.5]),
    "momentum": (["optim.name=momentum", "optim.momentum=0.9"], [0.005, 0.015, 0.05]),
    "rmsprop": (["optim.name=rmsprop"], [3e-4, 1e-3, 3e-3]),
    "rmsprop+momentum": (["optim.name=rmsprop", "optim.rmsprop_momentum=0.9"], [1e-4, 3e-4, 1e-3]),
    "adam": (["optim.name=adam"], [3e-4, 1e-3, 3e-3]),
}
ADAPTIVE = ("rmsprop", "rmsprop+momentum", "adam")


@dataclass
class Config:
    hidden: list[int] = field(default_factory=lambda: [100, 100])
    epochs: int = 15
    seeds: int = 8  # 3 left the paired t interval (2 degrees of freedom) some 8 points wide
    val_fraction: float = 0.1
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(hidden=[64, 64], epochs=4, seeds=2, val_fraction=0.75)


def run(cfg: Config, workdir=None) -> dict:
    out = {}
    methods = {n: OPTIMIZERS["sgd"] if cfg.control else OPTIMIZERS[n]
               for n in (("sgd", "adam") if cfg.control else OPTIMIZERS)}
    seeds = [cfg.seed * 100 + k for k in range(cfg.seeds)]
    with tempfile.TemporaryDirectory(prefix="trainwell-lab-optim-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for name, (extra, rates) in methods.items():
            c = load_config(None, [*base.LAB_SETTINGS, f"name=\"lab-{name}\"", "data.name=mnist1d",
                                   f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
                                   f"model.hidden={cfg.hidden}", f"train.epochs={cfg.epochs}", "train.batch_size=100",
                                   *extra])
            res = sweep(c, {"optim.lr": rates, "train.seed": seeds}, out=root / name, quiet=True, force=True)
            curves: dict[int, list[float]] = {}
            for line in (root / name / "metrics.jsonl").read_text().splitlines():
                rec = json.loads(line)
                curves.setdefault(rec["member"], []).append(rec["val_loss"])
            grid = {}
            for m, row in enumerate(res.rows):
                g = grid.setdefault(str(row["optim.lr"]), {"lr": row["optim.lr"], "seeds": [], "val_acc": [],
                                                            "test_acc": [], "val_loss_curves": []})
                g["seeds"].append(row["train.seed"])
                g["val_acc"].append(row["val_acc"])
                g["test_acc"].append(row["test_acc"])
                g["val_loss_curves"].append(curves[m])
            best = max(grid.values(), key=lambda g: statistics.fmean(g["val_acc"]))  # chosen on validation
            out[name] = {"best_lr": best["lr"], "seeds": best["seeds"], "test_acc": best["test_acc"],
                         "val_acc": best["val_acc"], "val_loss_curves": best["val_loss_curves"],
                         "grid": {k: {"val_acc": statistics.fmean(g["val_acc"]),
                                      "test_acc": statistics.fmean(g["test_acc"])} for k, g in grid.items()},
                         "mode": res.mode.split(" (")[0]}
    return {"optimizers": out, "seeds": cfg.seeds, "control": cfg.control}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(12, 4, ncols=2)
    ax = axes[0][0]
    for (name, r), color in zip(result["optimizers"].items(), ("C0", "C1", "C2", "C3", "C4"), strict=False):
        curves = r["val_loss_curves"]
        n = min(len(c) for c in curves)
        mean = [statistics.fmean(c[i] for c in curves) for i in range(n)]
        lo = [min(c[i] for c in curves) for i in range(n)]
        hi = [max(c[i] for c in curves) for i in range(n)]
        ax.plot(range(1, n + 1), mean, color=color, label=f"{name} (lr {r.get('best_lr')})")
        ax.fill_between(range(1, n + 1), lo, hi, color=color, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation loss", title=f"MNIST-1D MLP, {result['seeds']} seeds (min-max band)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    names = list(result["optimizers"])
    stats = [_stats(result["optimizers"][n]["test_acc"]) for n in names]
    ax.bar(names, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4)
    ax.set(ylabel="test accuracy (mean +- std over seeds)", title="Test accuracy, each at its best rate")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return {"optimizers": fig}


def verdict(result: dict) -> dict:
    opt = result["optimizers"]
    stats = {n: _stats(r["test_acc"]) for n, r in opt.items()}
    ranking = sorted(stats, key=lambda n: -stats[n][0])
    adaptive = [n for n in ADAPTIVE if n in opt]
    best_adaptive = max(adaptive, key=lambda n: statistics.fmean(opt[n]["val_acc"]))  # chosen on validation
    a, b = opt[best_adaptive], opt["sgd"]
    if a["seeds"] != b["seeds"]:
        raise ValueError(f"paired by seed: {best_adaptive} ran seeds {a['seeds']}, sgd {b['seeds']}")
    diffs = [x - y for x, y in zip(a["test_acc"], b["test_acc"], strict=True)]
    favorable = base.criterion(f"test accuracy: {best_adaptive} - sgd, each at its best rate (paired by seed)",
                               *base.mean_interval(diffs), 0.0, method="paired t over seeds", n=len(diffs))
    evidence = {"test acc mean +- std": {n: f"{m:.4f} +- {s:.4f}" for n, (m, s) in stats.items()},
                "best rate (by validation)": {n: r["best_lr"] for n, r in opt.items()},
                "ranking (best first)": ranking, "best adaptive (by validation)": best_adaptive,
                "per-seed differences": [round(d, 4) for d in diffs], "seeds": result["seeds"],
                "grid (mean val / test acc)": {n: r.get("grid") for n, r in opt.items()},
                "training mode": {n: r["mode"] for n, r in opt.items()}, "literature": LITERATURE}
    return base.decide(CLAIM, [favorable], evidence,
                       "95% t interval over seeds of (the best adaptive method's test accuracy) - (plain SGD's), each "
                       "at the rate of its grid with the best mean validation accuracy, paired by seed, > 0")
