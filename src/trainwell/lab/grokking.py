"""grokking: on modular addition, a network fits its training set at once and generalizes long afterwards; weight
decay controls how long (Power, Burda, Edwards, Babuschkin & Misra 2022, "Grokking: Generalization beyond
overfitting on small algorithmic datasets").

The small CPU form (after okitouni/simple-grokking): a + b mod 53, full-batch AdamW at lr 3e-2. The model is
one-hot(a) ++ one-hot(b) -> Linear(106, 128) -> ReLU -> Linear(128, 53): the reference's embeddings followed by
a linear layer compose to exactly such a first layer. 66% of the pairs are the training file and 10% of those the
validation split (59% of all pairs train); the test accuracy is measured on the other 34% every ``eval_every``
steps. Calibrated on this machine (seed 0): weight decay 0.3 reaches 99% train at step 30 and 95% test at about
step 1040; weight decay 3 reaches 95% test at about step 380; weight decay 0.1 is at 78% test after 1500 steps.
Training stops once the test accuracy reaches the target, so the cost follows the generalization time.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwell.data.synthetic import modular
from trainwell.lab import base

NAME = "grokking"
CLAIM = "With small weight decay a network reaches 95% test accuracy on modular addition long after 99% train " \
        "accuracy (>= 5x the steps); with large weight decay it generalizes much earlier"
PAPER = "Power et al. 2022, Grokking: Generalization beyond overfitting on small algorithmic datasets"
EXPECTED_S = {"quick": 6, "default": 13}


@dataclass
class Config:
    p: int = 53
    train_fraction: float = 0.66
    small_decay: float = 0.3
    large_decay: float = 3.0
    max_steps: int = 2000
    lr: float = 3e-2
    eval_every: int = 10
    test_target: float = 0.95
    train_target: float = 0.99
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(max_steps=500)


def run(cfg: Config, workdir=None) -> dict:
    _, _, xte, yte = modular(cfg.p, cfg.train_fraction, "onehot", seed=cfg.seed)
    runs = {}
    for name, wd in (("small", cfg.small_decay), ("large", cfg.large_decay)):
        ev = base.Evaluate({"test": (xte, yte)}, every=cfg.eval_every, stop_at=("test", cfg.test_target))
        # the run has a validation split so that the checkpoint's best weights follow validation accuracy
        t = base.train(["data.name=modular", f"data.options={{p={cfg.p}, train_fraction={cfg.train_fraction}}}",
                        f"data.seed={cfg.seed}", "data.val_fraction=0.1", "model.kind=mlp", "model.hidden=[128]",
                        "optim.name=adam", "optim.decay=decoupled", f"optim.weight_decay={wd}", f"optim.lr={cfg.lr}",
                        "train.batch_size=1000000", f"train.epochs={cfg.max_steps}", "train.monitor=val_acc",
                        f"train.seed={cfg.seed}"], workdir, f"decay-{wd:g}", callbacks=[ev])
        train99 = next((h["step"] for h in t.history if h["train_acc"] >= cfg.train_target), None)
        at_memorized = next((r["test_acc"] for r in ev.records if train99 is not None and r["step"] >= train99), None)
        runs[name] = {"weight_decay": wd, "train_step": train99,
                      "test_step": base.first_at(ev.records, "test_acc", cfg.test_target),
                      "test_at_train_step": at_memorized, "steps_run": t.summary["steps"],
                      "curve": [[r["step"], r["train_acc"], r["test_acc"]] for r in ev.records]}
    return {"runs": runs, "test_target": cfg.test_target, "train_target": cfg.train_target,
            "max_steps": cfg.max_steps}


def plot(result: dict) -> dict:
    fig, ax = base.new_figure(7, 4)
    ax = ax[0][0]
    for r, color in zip(result["runs"].values(), ("C0", "C3"), strict=False):
        c = r["curve"]
        ax.plot([x[0] for x in c], [x[1] for x in c], "--", color=color, label=f"train, wd {r['weight_decay']:g}")
        ax.plot([x[0] for x in c], [x[2] for x in c], "-", color=color, label=f"test, wd {r['weight_decay']:g}")
    ax.set(xscale="log", xlabel="step (full batch)", ylabel="accuracy", title="Grokking: (a + b) mod 53")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"grokking_curves": fig}


def verdict(result: dict) -> dict:
    small, large = result["runs"]["small"], result["runs"]["large"]
    evidence = {k: {f: r[f] for f in ("weight_decay", "train_step", "test_step", "test_at_train_step", "steps_run")}
                for k, r in result["runs"].items()}
    threshold = ("small decay: step(test >= 95%) >= 5 x step(train >= 99%) with test < 30% at the latter; large "
                 "decay: reaches 95% test in fewer steps than small decay, and its delay ratio step(test >= 95%) / "
                 "step(train >= 99%) is at most half the small decay's (inconclusive when a run never reaches 95% "
                 "test within max_steps)")
    if any(r[k] is None for r in (small, large) for k in ("train_step", "test_step")):
        return base.make_verdict(CLAIM, None, evidence, threshold)
    ratio_small = small["test_step"] / small["train_step"]
    ratio_large = large["test_step"] / large["train_step"]
    evidence.update(delay_ratio_small=round(ratio_small, 2), delay_ratio_large=round(ratio_large, 2))
    grokked = ratio_small >= 5 and (small["test_at_train_step"] or 0) < 0.3
    early = large["test_step"] < small["test_step"] and ratio_large <= 0.5 * ratio_small
    return base.make_verdict(CLAIM, grokked and early, evidence, threshold)
