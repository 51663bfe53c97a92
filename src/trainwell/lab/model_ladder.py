"""model-ladder: on MNIST-1D, logistic regression < MLP < CNN, each near the published accuracy.

Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024), table 1: logistic regression 32%,
MLP 68%, CNN 94% test accuracy. The three models are trained by the pipeline with Adam and a one-cycle schedule:
logistic = an MLP with no hidden layer, MLP = two hidden layers of 100, CNN = trainwell's default MNIST-1D CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwell.lab import base

NAME = "model-ladder"
CLAIM = "On MNIST-1D, logistic regression < MLP < CNN in test accuracy, each within 5 points of the published " \
        "32% / 68% / 94%"
PAPER = "Greydanus & Kobak 2024, Scaling down deep learning with MNIST-1D, table 1"
EXPECTED_S = {"quick": 8, "default": 8}
PUBLISHED = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}
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
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(epochs_linear=10, epochs_mlp=20, epochs_cnn=6)


def run(cfg: Config, workdir=None) -> dict:
    epochs = {"logistic": cfg.epochs_linear, "mlp": cfg.epochs_mlp, "cnn": cfg.epochs_cnn}
    models = {}
    for name, extra in MODELS.items():
        t = base.train(["data.name=mnist1d", *extra, "optim.name=adam", f"optim.lr={cfg.lr}",
                        "optim.schedule=onecycle", f"train.epochs={epochs[name]}", "train.batch_size=100",
                        f"train.seed={cfg.seed}"], workdir, name)
        models[name] = {"test_acc": t.final["test_acc"], "train_acc": t.final["train_acc"],
                        "params": t.summary["params"], "epochs": epochs[name], "published": PUBLISHED[name],
                        "curve": [[h["epoch"], h.get("val_acc")] for h in t.history]}
    return {"models": models}


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


def verdict(result: dict) -> dict:
    m = result["models"]
    accs = [m[n]["test_acc"] for n in ("logistic", "mlp", "cnn")]
    ordered = accs[0] < accs[1] < accs[2]
    near = all(abs(m[n]["test_acc"] - m[n]["published"]) <= 0.05 for n in m)
    evidence = {n: {"test_acc": round(v["test_acc"], 4), "published": v["published"], "params": v["params"],
                    "epochs": v["epochs"]} for n, v in m.items()}
    return base.make_verdict(CLAIM, ordered and near, evidence,
                             "logistic < MLP < CNN and each |ours - published| <= 5 points")
