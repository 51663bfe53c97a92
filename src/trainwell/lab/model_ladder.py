"""model-ladder: on MNIST-1D, logistic regression < MLP < CNN, each near the published accuracy.

Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024), table 1: logistic regression 32%,
MLP 68%, CNN 94% test accuracy. The three models are trained by the pipeline with Adam and a one-cycle schedule:
logistic = an MLP with no hidden layer, MLP = two hidden layers of 100, CNN = trainwell's default MNIST-1D CNN.

The paper's claim is the ladder: each step up in inductive bias is more accurate on the same test signals. The
published test split has 1000 signals, too few to place a 65% accuracy within 5 points of 68% (its Wilson interval is
+-3 points wide), so the models are also scored on ``fresh_test`` new signals drawn by the MNIST-1D package's own
generator (``make_dataset`` with the published arguments and another seed: the same ten templates and the same
random transformations and noise, other draws), and every criterion counts the published test split and the fresh
signals together. Every model sees the same data and seed, so each step is a paired difference over the test
signals (1 where only the larger model is right, -1 where only the smaller is): its 95% t interval above 0. "Near
the published number" is an equivalence test: the Wilson interval of each model's test accuracy inside published
+- ``tolerance`` (pass), wholly outside it (fail), straddling an edge (inconclusive). Control: every rung replaced
by logistic regression (the ladder removed): the differences are exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwell.lab import base
from trainwell.lab.fresh_signals import fresh_correct, fresh_signals

NAME = "model-ladder"
CLAIM = "On MNIST-1D, logistic regression < MLP < CNN in test accuracy (paired over the test signals), each " \
        "within 5 points of the published 32% / 68% / 94%"
PAPER = "Greydanus & Kobak 2024, Scaling down deep learning with MNIST-1D, table 1"
CONTROL = "every rung of the ladder replaced by logistic regression: the three models are the same model"
EXPECTED_S = {"quick": 9, "default": 11}  # + ~4 s once, to generate and cache the fresh signals
# the quick size trains each model for a third to two thirds of the epochs: its accuracies say nothing about the
# published ones (measured over the 11000 test signals: MLP 64.4-65.2%, CNN 92.9-93.4% at quick size, seeds 0-2)
QUICK_DECIDES = False
PUBLISHED = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}
LITERATURE = "Greydanus & Kobak 2024, table 1 (MNIST-1D, 4000 training signals, 1000 test): logistic 32%, MLP 68%," \
             " CNN 94%. Ours: the same data (3600 training signals, 400 for validation), trained for fewer steps " \
             "(1080, 1080 and 540 steps of batch 100 vs the notebook's 6000, where the MLP reaches 65%), scored on " \
             "the 1000 test signals and 10000 fresh ones from the same generator: logistic 31.9-32.0%, MLP " \
             "65.0-65.7%, CNN 95.3-96.1% (seeds 0-2), the MLP a little below the paper's number"

MODELS = {
    "logistic": ["model.kind=mlp", "model.hidden=[]"],
    "mlp": ["model.kind=mlp", "model.hidden=[100, 100]"],
    "cnn": ["model.kind=cnn"],
}


@dataclass
class Config:
    epochs_linear: int = 30
    epochs_mlp: int = 30
    epochs_cnn: int = 15
    lr: float = 1e-2
    tolerance: float = 0.05
    fresh_test: int = 10_000
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(epochs_linear=10, epochs_mlp=20, epochs_cnn=6)


def run(cfg: Config, workdir=None) -> dict:
    epochs = {"logistic": cfg.epochs_linear, "mlp": cfg.epochs_mlp, "cnn": cfg.epochs_cnn}
    models, correct = {}, {}
    fresh = fresh_signals(cfg.fresh_test) if cfg.fresh_test else None
    for name in MODELS:
        used = "logistic" if cfg.control else name
        t = base.train(["data.name=mnist1d", *MODELS[used], "optim.name=adam", f"optim.lr={cfg.lr}",
                        "optim.schedule=onecycle", f"train.epochs={epochs[used]}", "train.batch_size=100",
                        f"train.seed={cfg.seed}"], workdir, name)
        published = base.correct(t, "test")
        correct[name] = published + (fresh_correct(t, *fresh) if fresh is not None else [])
        models[name] = {"test_acc": sum(correct[name]) / len(correct[name]), "train_acc": t.final["train_acc"],
                        "published_split_acc": sum(published) / len(published),
                        "params": t.summary["params"], "epochs": epochs[used], "published": PUBLISHED[name],
                        "test_size": len(correct[name]),
                        "curve": [[h["epoch"], h.get("val_acc")] for h in t.history]}
    paired = {"mlp-logistic": base.paired_correct(correct["mlp"], correct["logistic"]),
              "cnn-mlp": base.paired_correct(correct["cnn"], correct["mlp"])}
    return {"models": models, "paired": paired, "tolerance": cfg.tolerance, "control": cfg.control}


def plot(result: dict) -> dict:
    fig, ax = base.new_figure(6, 4)
    ax = ax[0][0]
    names = list(result["models"])
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [result["models"][n]["test_acc"] for n in names], 0.4, label="trainwell")
    ax.bar([x + 0.2 for x in xs], [result["models"][n]["published"] for n in names], 0.4, label="published")
    ax.set_xticks(list(xs), names)
    ax.set(ylabel="test accuracy", ylim=(0, 1), title="MNIST-1D model ladder")
    ax.legend()
    fig.tight_layout()
    return {"ladder": fig}


def near_published(name: str, acc: float, n: int, published: float, tolerance: float) -> dict:
    """Equivalence of a test accuracy with the published one: the Wilson interval of ``acc`` (``n`` test examples)
    inside ``published +- tolerance`` passes, wholly outside fails, across an edge is inconclusive. The effect is
    the distance to the nearer edge (positive inside)."""
    lo, hi = base.wilson(round(acc * n), n)
    inside = min(acc - (published - tolerance), published + tolerance - acc)
    crit = base.criterion(f"{name}: test accuracy within {tolerance:.0%} of the published {published:.0%}",
                          inside, 0.0, 0.0, 0.0, method="Wilson interval inside the band", n=n)
    if lo > published - tolerance and hi < published + tolerance:
        status = "pass"
    elif hi < published - tolerance or lo > published + tolerance:
        status = "fail"
    else:
        status = "inconclusive"
    crit.update(status=status, lo=round(lo, 5), hi=round(hi, 5), effect=round(acc, 5),
                threshold=f"[{published - tolerance:.2f}, {published + tolerance:.2f}]")
    return crit


def verdict(result: dict) -> dict:
    m, paired, tol = result["models"], result["paired"], result.get("tolerance", 0.05)
    criteria = [base.criterion(f"test accuracy: {k.replace('-', ' - ')} (paired over test signals)",
                               *base.mean_interval(d), 0.0, method="paired t over test examples", n=len(d))
                for k, d in paired.items()]
    criteria += [near_published(n, v["test_acc"], v["test_size"], v["published"], tol) for n, v in m.items()]
    evidence = {n: {"test_acc": round(v["test_acc"], 4), "test_size": v["test_size"],
                    "published_split_acc": round(v.get("published_split_acc", v["test_acc"]), 4),
                    "published": v["published"], "params": v["params"], "epochs": v["epochs"]} for n, v in m.items()}
    evidence["literature"] = LITERATURE
    return base.decide(CLAIM, criteria, evidence,
                       "95% paired t intervals over the test signals: MLP - logistic > 0 and CNN - MLP > 0; each "
                       f"model's Wilson interval of test accuracy inside published +- {tol:.0%}")
