"""random-labels: networks memorize random labels (Zhang et al. 2017, "Understanding deep learning requires
rethinking generalization", ICLR).

An MLP without regularization or augmentation is trained on MNIST-1D three times: true labels, labels drawn at
random once (``data.random_labels``), and true labels with every example's features shuffled by its own
permutation (``data.random_pixels``). Each run stops when its training accuracy reaches the target; the steps it
took are the memorization time. Expected: random labels are fitted too (train >= 99%), the test accuracy stays
at chance, and fitting noise takes more steps than fitting the true labels.

Each seed trains ``draws`` independent draws (initialization, batch order and the random labels and pixels all
differ; within a draw the three arms share the initialization and the training subset). Verdict: every random-label
and random-pixel run reaches the target (a fact of the training set: exact); the random-label nets' test accuracy
minus chance, a 95% t interval over the draws, inside +-3 points (equivalence); and log(steps random labels / steps
true labels), a paired t interval over the draws, above 0. The same log ratio for random pixels is reported beside
Zhang et al.'s figure 1a (there random pixels take longer than true labels). Control: the random labels and random
pixels replaced by the true ones (the randomization removed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainwell.lab import base

NAME = "random-labels"
CLAIM = "Networks memorize random labels: train accuracy >= 99% on random labels (and random pixels) with test " \
        "accuracy at chance, after more steps than the true labels need"
PAPER = "Zhang, Bengio, Hardt, Recht & Vinyals 2017, Understanding deep learning requires rethinking generalization"
CONTROL = "the random labels and random pixels replaced by the true labels and pixels: nothing random to memorize"
EXPECTED_S = {"quick": 10, "default": 18}
# two draws at quick size: steps are whole epochs, so two draws often give the same ratio and a zero-width interval
QUICK_DECIDES = False
LITERATURE = "Zhang et al. 2017, figure 1a (CIFAR-10, Inception, SGD): true labels, random labels and random pixels " \
             "all reach 100% train accuracy; training time on random labels \"increases only by a small constant " \
             "factor\", and random pixels too take longer than true labels. Ours (a 2-layer MLP on MNIST-1D, 2000 " \
             "training signals): random labels take 1.4-1.5x the true labels' steps, while random pixels are " \
             "fitted faster than the true labels (the pixels ratio, measured per draw), plausibly because " \
             "shuffled signals are near-orthogonal points that a wide MLP separates at once while the true " \
             "signals' classes overlap (not established here)"


@dataclass
class Config:
    hidden: list[int] | None = None
    val_fraction: float = 0.5  # the training subset: 1 - val_fraction of MNIST-1D's 4000 training signals
    max_epochs: int = 400
    lr: float = 2e-3
    batch_size: int = 100
    target: float = 0.99
    draws: int = 4
    chance_band: float = 0.03
    seed: int = 0
    control: bool = False

    def __post_init__(self):
        if self.hidden is None:
            self.hidden = [512, 512]

    @classmethod
    def quick(cls) -> Config:
        return cls(hidden=[256, 256], val_fraction=0.85, max_epochs=300, lr=3e-3, draws=2)


ARMS = {"true_labels": [], "random_labels": ["data.random_labels=true"], "random_pixels": ["data.random_pixels=true"]}


def run(cfg: Config, workdir=None) -> dict:
    out = {"target": cfg.target, "chance": 0.1, "chance_band": cfg.chance_band, "control": cfg.control,
           "max_epochs": cfg.max_epochs, "draws": []}
    for d in range(cfg.draws):
        seed = cfg.seed * 100 + d
        common = ["data.name=mnist1d", f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
                  f"model.hidden={cfg.hidden}", "optim.name=adam", f"optim.lr={cfg.lr}",
                  f"train.epochs={cfg.max_epochs}", f"train.batch_size={cfg.batch_size}", f"train.seed={seed}",
                  f"data.corrupt_seed={seed + 1}",
                  "train.val_each_epoch=false"]  # the held-out half only sizes the training set: never read
        runs = {}
        for kind, extra in ARMS.items():
            reached = base.Reached("train_acc", cfg.target)
            t = base.train([*common, *([] if cfg.control else extra)], workdir, f"{kind}-draw{d}",
                           callbacks=[reached])
            runs[kind] = {"steps": reached.step, "epochs_run": t.summary["epochs"], "steps_run": t.summary["steps"],
                          "train_acc": t.final["train_acc"], "test_acc": t.final["test_acc"],
                          "curve": [[h["step"], h["train_acc"]] for h in t.history],
                          "train_size": t.summary["sizes"]["train"] if isinstance(t.summary.get("sizes"), dict)
                          else None}
        out["draws"].append(runs)
    out["runs"] = out["draws"][0]
    return out


def plot(result: dict) -> dict:
    fig, ax = base.new_figure(6, 4)
    ax = ax[0][0]
    for kind, style in (("true_labels", "-"), ("random_labels", "--"), ("random_pixels", ":")):
        curve = result["runs"][kind]["curve"]
        ax.plot([c[0] for c in curve], [c[1] for c in curve], style, label=kind.replace("_", " "))
    ax.axhline(result["target"], color="gray", lw=0.8)
    ax.set(xlabel="training step", ylabel="train accuracy", title="Fitting random labels (MNIST-1D MLP)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"train_accuracy": fig}


def log_ratios(result: dict, kind: str) -> list[tuple[float, float, float]]:
    """Per draw, log(steps ``kind`` / steps true labels) to the target, with the range the epoch-end check allows:
    the target was reached within the epoch that reported it, so each count is known to one epoch's steps (lower,
    measured, upper). A run that never reached it counts its last step (a lower bound): for random labels that
    understates the slowdown; a draw whose true labels never reached it is left out."""
    out = []
    for runs in result["draws"]:
        true, other = runs["true_labels"], runs[kind]
        if true["steps"] is None:
            continue
        o = other["steps"] or other["steps_run"]
        t = true["steps"]
        per = {k: r["steps_run"] / r["epochs_run"] if r.get("epochs_run") else 0
               for k, r in (("o", other), ("t", true))}
        o_lo = max(1.0, o - per["o"] + 1) if per["o"] else o  # the earliest step the reporting epoch allows
        t_lo = max(1.0, t - per["t"] + 1) if per["t"] else t
        out.append((math.log(o_lo / t), math.log(o / t), math.log(o / t_lo)))
    return out


def ratio_interval(result: dict, kind: str) -> tuple[float, float, float]:
    """``(mean log ratio, lo, hi)``: the t interval over draws of the lowest ratios each draw allows gives ``lo``,
    of the highest ``hi``; so equal whole-epoch counts in every draw do not give an interval of zero width."""
    rows = log_ratios(result, kind)
    m = base.mean_interval([r[1] for r in rows])[0]
    return m, base.mean_interval([r[0] for r in rows])[1], base.mean_interval([r[2] for r in rows])[2]


def chance_criterion(result: dict) -> dict:
    """The random-label nets' test accuracy - chance: a t interval over draws inside +-band passes (equivalence),
    wholly outside fails."""
    band = result.get("chance_band", 0.03)
    accs = [runs["random_labels"]["test_acc"] - result["chance"] for runs in result["draws"]]
    m, lo, hi = base.mean_interval(accs)
    crit = base.criterion(f"random labels: test accuracy - chance, within +-{band:.0%}", m, lo, hi, 0.0,
                          method="t over draws, equivalence band", n=len(accs))
    if -band < lo and hi < band:
        crit["status"] = "pass"
    elif hi < -band or lo > band:
        crit["status"] = "fail"
    else:
        crit["status"] = "inconclusive"
    crit["threshold"] = f"[-{band}, {band}]"
    return crit


def verdict(result: dict) -> dict:
    draws, target = result["draws"], result["target"]
    fitted = [min(runs[k]["train_acc"] for runs in draws) for k in ("random_labels", "random_pixels")]
    memorized = base.check(f"random labels and random pixels: train accuracy >= {target:.0%} in every draw",
                           min(fitted) >= target, round(min(fitted), 4), f">= {target}")
    slower = base.criterion("log(steps random labels / steps true labels)", *ratio_interval(result, "random_labels"),
                            0.0, method="paired t over draws, widened by one epoch's steps", n=len(draws))
    pix = ratio_interval(result, "random_pixels")
    evidence = {f"draw {i}": {k: {"steps_to_target": r["steps"], "train_acc": round(r["train_acc"], 4),
                                  "test_acc": round(r["test_acc"], 4)} for k, r in runs.items()}
                for i, runs in enumerate(draws)}
    evidence.update(chance=result["chance"], literature=LITERATURE,
                    random_pixels_vs_true={"steps ratio": round(math.exp(pix[0]), 3),
                                           "95% interval": [round(math.exp(v), 3) if math.isfinite(v) else None
                                                            for v in pix[1:]]})
    if pix[2] < 0:
        evidence["remark"] = (f"random pixels were fitted faster than the true labels here (steps ratio "
                              f"{math.exp(pix[0]):.2f}, 95% interval [{math.exp(pix[1]):.2f}, {math.exp(pix[2]):.2f}]"
                              "), unlike Zhang et al.'s figure 1a (CIFAR-10, Inception), where they take longer")
    elif pix[1] > 0:
        evidence["remark"] = "random pixels took longer to fit than the true labels, as in Zhang et al.'s figure 1a"
    else:
        evidence["remark"] = "random pixels and true labels: no difference in fitting time decided at this size"
    return base.decide(CLAIM, [memorized, chance_criterion(result), slower], evidence,
                       f"every random-label and random-pixel run reaches {target:.0%} train accuracy; 95% t "
                       "intervals over draws: random-label test accuracy - chance inside +-3 points, and "
                       "log(steps random labels / steps true labels) > 0 (paired)")
