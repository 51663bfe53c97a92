"""xor-direct-connections: a linear model cannot fit XOR; hidden units can; direct input-output connections
help hidden units learn (the lecture's "Adding bias into a model": NETtalk's direct I/O connections learn the easy
part of a task, hidden units the exceptions; Rumelhart, Hinton & Williams 1986 trained XOR with direct
connections and a single hidden unit).

Every condition is trained on the four XOR patterns in ``trials`` independent initializations (each condition its
own seeds); a trial stops when all four patterns are classified correctly. Speed is the number of epochs to get
there (a trial that never does counts as ``max_epochs``, which only understates a difference).

Verdict, two intervals: the fraction of trials with hidden units that fit XOR minus the linear model's (Newcombe's
interval of a difference of proportions) > 0, and the mean epochs to fit without direct connections minus with
them (Welch's t interval) > 0. Control: the "direct" arm trained without its direct connections (2 hidden units,
its own seeds), so both arms are the same model and the speed criterion cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwell.lab import base

NAME = "xor-direct-connections"
CLAIM = "A linear model cannot fit XOR; hidden units can; direct input-output connections make hidden units " \
        "learn XOR faster"
PAPER = "Rumelhart, Hinton & Williams 1986 (XOR, direct connections); Sejnowski & Rosenberg 1987 (NETtalk)"
CONTROL = "the hidden+direct arm trained without its direct connections (the same 2-hidden-unit model as the " \
          "hidden arm, other seeds)"
EXPECTED_S = {"quick": 3, "default": 13}
LITERATURE = "Rumelhart, Hinton & Williams 1986 (PDP vol. 1, ch. 8, the XOR networks): a network with one " \
             "hidden unit and direct input-output connections learns XOR, and 2 hidden units without direct " \
             "connections sometimes end in a local minimum; they report single runs, not a speed compared over " \
             "many starts, so there is no paper number for our effect"

CONDITIONS = {
    "linear": ["model.hidden=[]"],
    "hidden": ["model.hidden=[2]"],
    "hidden+direct": ["model.hidden=[2]", "model.skip_io=true"],
}


@dataclass
class Config:
    trials: int = 10
    max_epochs: int = 300
    lr: float = 0.05
    activation: str = "tanh"
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(trials=3, max_epochs=300)


def run(cfg: Config, workdir=None) -> dict:
    out = {"max_epochs": cfg.max_epochs, "control": cfg.control, "conditions": {}}
    for arm, (name, extra) in enumerate(CONDITIONS.items()):
        if cfg.control and name == "hidden+direct":
            extra = CONDITIONS["hidden"]  # the component under test removed
        trials = []
        for k in range(cfg.trials):
            seed = cfg.seed * 1000 + arm * 100 + k  # independent arms: each its own initializations
            reached = base.Reached("train_acc", 1.0)
            t = base.train(["data.name=xor", "model.kind=mlp", f"model.activation={cfg.activation}", *extra,
                            "optim.name=adam", f"optim.lr={cfg.lr}", f"train.epochs={cfg.max_epochs}",
                            "train.batch_size=4", f"train.seed={seed}"], workdir, f"{name}-{k}", callbacks=[reached])
            trials.append({"epochs": reached.epoch + 1 if reached.epoch is not None else None,
                           "train_acc": t.final["train_acc"],
                           "loss_curve": [h["train_loss"] for h in t.history]})
        out["conditions"][name] = {"trials": trials, "solved": sum(t["epochs"] is not None for t in trials),
                                   "best_train_acc": max(t["train_acc"] for t in trials)}
    return out


def _epochs(cond: dict, max_epochs: int) -> list[int]:
    return [t["epochs"] if t["epochs"] is not None else max_epochs for t in cond["trials"]]


def plot(result: dict) -> dict:
    fig, ax = base.new_figure(6, 4)
    ax = ax[0][0]
    for (name, c), color in zip(result["conditions"].items(), ("C0", "C1", "C2"), strict=False):
        for i, t in enumerate(c["trials"]):
            ax.plot(t["loss_curve"], color=color, alpha=0.6, label=name if i == 0 else None)
    ax.set(xlabel="epoch", ylabel="train loss", yscale="log",
           title="XOR: linear, hidden, hidden + direct" + (" (control: no direct)" if result.get("control") else ""))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"loss_curves": fig}


def verdict(result: dict) -> dict:
    c, top = result["conditions"], result["max_epochs"]
    lin, hid, both = c["linear"], c["hidden"], c["hidden+direct"]
    n_lin, n_hidden = len(lin["trials"]), len(hid["trials"]) + len(both["trials"])
    fit = base.criterion("fraction fitting XOR: hidden units - linear",
                         *base.diff_proportions(hid["solved"] + both["solved"], n_hidden, lin["solved"], n_lin),
                         0.0, method="Newcombe hybrid score", n=n_hidden + n_lin)
    faster = base.criterion("epochs to fit: hidden - hidden+direct", *base.diff_means(_epochs(hid, top),
                                                                                       _epochs(both, top)),
                            0.0, method="Welch t (censored at max_epochs)", n=len(hid["trials"]) + len(both["trials"]),
                            unit="epochs")
    evidence = {k: {"solved": f"{v['solved']}/{len(v['trials'])}", "mean_epochs": sum(_epochs(v, top)) / len(
        v["trials"]), "best_train_acc": v["best_train_acc"]} for k, v in c.items()}
    evidence["literature"] = LITERATURE
    return base.decide(CLAIM, [fit, faster], evidence,
                       "95% intervals: (fraction of trials with hidden units that fit XOR) - (linear's) > 0, and "
                       "(mean epochs to fit without direct connections) - (with them) > 0")
