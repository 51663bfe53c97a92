"""optimizers: SGD, SGD + momentum, RMSprop, RMSprop + momentum and Adam on one task over several seeds — curves
with their spread, the run-to-run variance, and whether the lecture's ranking holds beyond that variance.

The lecture ("What is best then?", after Schaul, Antonoglou & Silver 2014, "Unit tests for stochastic
optimization"): "Adam, RMSprop seem to be slightly favorable; however, no best algorithm"; Jordan 2023, "Calibrated
chaos: variance between runs of neural network training is harmless and inevitable": differences smaller than the
run-to-run spread are not differences. Each optimizer trains the same MNIST-1D MLP from the same seeds with a
common default learning rate (Kingma & Ba 2015 for Adam; Hinton's lecture 6e for RMSprop; SGD's rate ten times
larger than momentum's "effective" one is not tuned away), through :func:`trainwell.sweep.sweep` (a population
over the seeds where the optimizer has one, one run after another otherwise).
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
CLAIM = "Adaptive methods (RMSprop, Adam) are slightly favorable to plain SGD on the same task, by more than the " \
        "run-to-run spread; the full ranking is reported with its spread"
PAPER = "The lecture's 'What is best then?' (Schaul et al. 2014); Jordan 2023, Calibrated chaos"
EXPECTED_S = {"quick": 6, "default": 12}
OPTIMIZERS = {
    "sgd": ["optim.name=sgd", "optim.lr=0.05"],
    "momentum": ["optim.name=momentum", "optim.lr=0.05", "optim.momentum=0.9"],
    "rmsprop": ["optim.name=rmsprop", "optim.lr=0.001"],
    "rmsprop+momentum": ["optim.name=rmsprop", "optim.lr=0.0003", "optim.rmsprop_momentum=0.9"],
    "adam": ["optim.name=adam", "optim.lr=0.001"],
}
ADAPTIVE = ("rmsprop", "rmsprop+momentum", "adam")


@dataclass
class Config:
    hidden: list[int] = field(default_factory=lambda: [100, 100])
    epochs: int = 15
    seeds: int = 3
    val_fraction: float = 0.1
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(hidden=[64, 64], epochs=4, seeds=2, val_fraction=0.75)


def run(cfg: Config, workdir=None) -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="trainwell-lab-optim-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for name, extra in OPTIMIZERS.items():
            c = load_config(None, [*base.LAB_SETTINGS, f"name=\"lab-{name}\"", "data.name=mnist1d",
                                   f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
                                   f"model.hidden={cfg.hidden}", f"train.epochs={cfg.epochs}", "train.batch_size=100",
                                   *extra])
            res = sweep(c, {"train.seed": [cfg.seed * 100 + k for k in range(cfg.seeds)]}, out=root / name,
                        quiet=True, force=True)
            curves: dict[int, list[float]] = {}
            for line in (root / name / "metrics.jsonl").read_text().splitlines():
                rec = json.loads(line)
                curves.setdefault(rec["member"], []).append(rec["val_loss"])
            out[name] = {"val_loss_curves": [curves[m] for m in sorted(curves)],
                         "test_acc": [r["test_acc"] for r in res.rows], "val_loss": [r["val_loss"] for r in res.rows],
                         "mode": res.mode.split(" (")[0]}
    return {"optimizers": out, "seeds": cfg.seeds}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(12, 4, ncols=2)
    ax = axes[0][0]
    for (name, r), color in zip(result["optimizers"].items(), ("C0", "C1", "C2", "C3", "C4"), strict=True):
        curves = r["val_loss_curves"]
        n = min(len(c) for c in curves)
        mean = [statistics.fmean(c[i] for c in curves) for i in range(n)]
        lo = [min(c[i] for c in curves) for i in range(n)]
        hi = [max(c[i] for c in curves) for i in range(n)]
        ax.plot(range(1, n + 1), mean, color=color, label=name)
        ax.fill_between(range(1, n + 1), lo, hi, color=color, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation loss", title=f"MNIST-1D MLP, {result['seeds']} seeds (min-max band)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    names = list(result["optimizers"])
    stats = [_stats(result["optimizers"][n]["test_acc"]) for n in names]
    ax.bar(names, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4)
    ax.set(ylabel="test accuracy (mean +- std over seeds)", title="Final test accuracy")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return {"optimizers": fig}


def verdict(result: dict) -> dict:
    opt = result["optimizers"]
    stats = {n: _stats(r["test_acc"]) for n, r in opt.items()}
    ranking = sorted(stats, key=lambda n: -stats[n][0])
    best_adaptive = max(ADAPTIVE, key=lambda n: stats[n][0])
    spread = max(s for _, s in stats.values())
    margin = stats[best_adaptive][0] - stats["sgd"][0]
    evidence = {"test acc mean +- std": {n: f"{m:.4f} +- {s:.4f}" for n, (m, s) in stats.items()},
                "ranking (best first)": ranking, "best adaptive": best_adaptive,
                "margin over sgd": round(margin, 4), "largest run-to-run std": round(spread, 4),
                "seeds": result["seeds"], "training mode": {n: r["mode"] for n, r in opt.items()}}
    if result["seeds"] < 2:
        return base.make_verdict(CLAIM, None, evidence, "needs >= 2 seeds to measure the run-to-run spread")
    return base.make_verdict(CLAIM, margin > 2 * spread and margin > 0, evidence,
                             "the best adaptive method's mean test accuracy exceeds plain SGD's by more than twice the "
                             "largest run-to-run std")
