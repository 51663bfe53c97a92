"""l1-vs-l2: at matched accuracy, L1 leaves a far larger fraction of weights near zero than L2.

The lecture (after cs231n): L2 ``1/2 lambda w^2`` prefers diffuse weights; L1 ``lambda |w|`` shrinks every
non-zero weight by a constant amount and so drives many to zero (sparsity, input selection; Tibshirani 1996,
"Regression shrinkage and selection via the lasso"). The same MLP is trained on the digits with each penalty at
strengths from ``l1`` and ``l2``; the pair of runs with the closest validation accuracy is compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainwell.lab import base

NAME = "l1-vs-l2"
CLAIM = "At matched accuracy, L1 leaves a far larger fraction of weights near zero than L2"
PAPER = "Tibshirani 1996 (lasso); cs231n Neural Networks Part 2 (regularization)"
EXPECTED_S = {"quick": 5, "default": 17}


@dataclass
class Config:
    l1: list[float] = field(default_factory=lambda: [3e-4, 1e-3])
    l2: list[float] = field(default_factory=lambda: [3e-3, 1e-2])
    hidden: int = 64
    epochs: int = 40
    lr: float = 0.05
    near_zero: float = 1e-3
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(l1=[1e-3], l2=[3e-3], epochs=20)


def run(cfg: Config, workdir=None) -> dict:
    # SGD + momentum: under Adam an L1 subgradient step is normalized to about lr, so weights hover at |w| ~ lr
    # around zero instead of settling there
    common = ["data.name=digits", "model.kind=mlp", f"model.hidden=[{cfg.hidden}]", "optim.name=momentum",
              f"optim.lr={cfg.lr}", f"train.epochs={cfg.epochs}", "train.batch_size=64", f"train.seed={cfg.seed}"]
    runs = []
    for kind, lams in (("l1", cfg.l1), ("l2", cfg.l2)):
        for lam in lams:
            t = base.train([*common, f"regularize.{kind}={lam}"], workdir, f"{kind}-{lam:g}")
            w = torch.cat([p.reshape(-1) for p in base.weights(t.model)]).abs()
            runs.append({"kind": kind, "lambda": lam, "val_acc": t.final["val_acc"], "test_acc": t.final["test_acc"],
                         "near_zero": float((w < cfg.near_zero).float().mean()),
                         "near_zero_1e-2": float((w < 1e-2).float().mean()),
                         "log10_abs_w": torch.log10(w.clamp_min(1e-8)).tolist()})
    return {"runs": runs, "near_zero": cfg.near_zero}


def matched(result: dict) -> tuple[dict, dict]:
    """The (L1, L2) pair of runs with the closest validation accuracy."""
    l1 = [r for r in result["runs"] if r["kind"] == "l1"]
    l2 = [r for r in result["runs"] if r["kind"] == "l2"]
    return min(((a, b) for a in l1 for b in l2), key=lambda p: abs(p[0]["val_acc"] - p[1]["val_acc"]))


def plot(result: dict) -> dict:
    a, b = matched(result)
    fig, ax = base.new_figure(6.5, 4)
    ax = ax[0][0]
    bins = [x / 10 for x in range(-80, 11)]
    for r, color in ((a, "C3"), (b, "C0")):
        ax.hist(r["log10_abs_w"], bins=bins, alpha=0.55, color=color,
                label=f"{r['kind'].upper()} λ={r['lambda']:g}: val {r['val_acc']:.1%}, "
                      f"{r['near_zero']:.0%} below {result['near_zero']:g}")
    ax.axvline(torch.log10(torch.tensor(result["near_zero"])).item(), color="gray", ls="--", lw=0.8)
    ax.set(xlabel="log10 |w|", ylabel="weights", title="Weight magnitudes at matched accuracy (digits MLP)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"weight_histograms": fig}


def verdict(result: dict) -> dict:
    a, b = matched(result)
    evidence = {"l1": {k: a[k] for k in ("lambda", "val_acc", "near_zero", "near_zero_1e-2")},
                "l2": {k: b[k] for k in ("lambda", "val_acc", "near_zero", "near_zero_1e-2")},
                "all_runs": [{k: r[k] for k in ("kind", "lambda", "val_acc", "near_zero")} for r in result["runs"]]}
    threshold = (f"validation accuracies within 3 points (else inconclusive); L1's fraction of |w| < "
                 f"{result['near_zero']:g} >= 2x L2's and >= 20 points above it")
    if abs(a["val_acc"] - b["val_acc"]) > 0.03:
        return base.make_verdict(CLAIM, None, evidence, threshold)
    ok = a["near_zero"] >= 2 * b["near_zero"] and a["near_zero"] - b["near_zero"] >= 0.2
    return base.make_verdict(CLAIM, ok, evidence, threshold)
