"""stopping-criteria: the lecture's four ways to decide when to stop, applied to the same training run.

The lecture ("When to stop training", after Prechelt 1998, "Early stopping - but when?"): (1) a fixed schedule
of n epochs (then m more at a lower learning rate) — "can't assume one-size-fits-all"; (2) loss change: stop when
the loss dropped by less than x% over a window of 10 epochs; (3) weight change: stop when
max_i |w_i(t) - w_i(t-10)| < theta; (4) validation early stopping with patience, keeping the best weights.

One MLP on a small MNIST-1D training set (so that it overfits) is trained by the pipeline for the whole budget
with no criterion switched on; a callback records every epoch's test accuracy and a snapshot of the weights. Each
criterion of :mod:`trainwell.train.stopping` is then evaluated on the growing history, epoch by epoch, exactly as
the trainer's stop callback would, giving its stop epoch and the test accuracy there (for early stopping: at the
restored best epoch, the one with the lowest validation loss). A second pipeline run with
``stop.criteria = ["early_stopping"]`` and ``restore_best`` checks the real thing: its restored model must be that
best epoch's, with the same test accuracy (within 1 point) as that epoch of the full run. The best test accuracy
any epoch reached (an oracle no criterion can see) is reported beside it. The fixed schedule's learning-rate drop
is not applied in the shared run (it would change the run the others are read from); it stops at n + m epochs.

The lecture's question is which criterion stops at the best generalization. The claim tested is that validation
early stopping (with the best epoch restored) does: its model's test accuracy minus each other criterion's model's,
paired over the test examples (every criterion reads the same run), has a 95% interval above 0 for every other
criterion. On this task it often does not (the fixed schedule stops later, past a validation-loss minimum that
comes before the test-accuracy maximum): then the verdict is a fail and says by how much. Control: early stopping's
model replaced by the fixed schedule's (the criterion under test made equal to a baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainwell.lab import base
from trainwell.train.callbacks import Callback, State
from trainwell.train.stopping import EarlyStopping, FixedSchedule, LossChange, WeightChange

NAME = "stopping-criteria"
CLAIM = "Of the lecture's four stopping criteria applied to the same run, validation early stopping (best epoch " \
        "restored) stops at the best generalization; the pipeline's early stopping restores that epoch"
PAPER = "The lecture's 'When to stop training' slides; Prechelt 1998, Early stopping - but when?"
CONTROL = "early stopping's model replaced by the fixed schedule's: the criterion under test equals a baseline"
EXPECTED_S = {"quick": 3, "default": 4}
LITERATURE = "Prechelt 1998 (Early stopping - but when?, 12 problems x 14 criteria): slower criteria find " \
             "slightly better generalization (about 4% lower test error on average) at about 4x the training " \
             "time; no criterion is best on every problem"


class TestCorrect(Callback):
    """After every epoch, record which test examples the model (eval mode) classifies right (0/1 per example)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.per_epoch: list[list[int]] = []

    def on_fit_start(self, state: State) -> None:
        self.per_epoch = []

    @torch.no_grad()
    def on_epoch_end(self, state: State) -> None:
        model = state.model
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        self.per_epoch.append((model(self.x.to(dev)).argmax(dim=1).cpu() == self.y).int().tolist())
        model.train(was)


class Snapshots(Callback):
    """Keep a flat copy of the weights after every epoch (what the weight-change criterion compares)."""

    def __init__(self):
        self.weights: list[torch.Tensor] = []

    def on_fit_start(self, state: State) -> None:
        self.weights = []

    def on_epoch_end(self, state: State) -> None:
        self.weights.append(torch.cat([p.detach().reshape(-1) for p in state.model.parameters()]).cpu().clone())


@dataclass
class Config:
    hidden: int = 128
    val_fraction: float = 0.5
    epochs: int = 60
    lr: float = 0.003
    fixed_epochs: int = 30
    fixed_more: int = 10
    window: int = 10
    loss_threshold: float = 0.01
    weight_threshold: float = 0.05
    patience: int = 10
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(hidden=64, val_fraction=0.75, epochs=25, lr=0.01, fixed_epochs=10, fixed_more=5, window=5,
                   patience=5)


def first_stop(criterion, series) -> int | None:
    """The first epoch (0-based) at which ``criterion.evaluate(series[: epoch + 1])`` says stop; None if never."""
    return next((i for i in range(len(series)) if criterion.evaluate(series[: i + 1])[0]), None)


def run(cfg: Config, workdir=None) -> dict:
    from trainwell.config import load_config
    from trainwell.pipeline import load_data

    common = ["data.name=mnist1d", f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
              f"model.hidden=[{cfg.hidden}, {cfg.hidden}]", "optim.name=adam", f"optim.lr={cfg.lr}",
              f"train.epochs={cfg.epochs}", "train.batch_size=100", f"train.seed={cfg.seed}", f"data.seed={cfg.seed}"]
    splits, _ = load_data(load_config(None, [*common, "train.epochs=1"]))
    evaluate, snaps, per_example = base.Evaluate({"test": splits.test}), Snapshots(), TestCorrect(*splits.test)
    full = base.train(common, workdir, "full-run", callbacks=[evaluate, snaps, per_example])
    hist = full.history
    train_loss = [h["train_loss"] for h in hist]
    val_loss = [h["val_loss"] for h in hist]
    test_acc = [r["test_acc"] for r in evaluate.records]
    es = EarlyStopping("min", cfg.patience)
    criteria = {
        "fixed": (FixedSchedule(cfg.fixed_epochs, 0.1, cfg.fixed_more), train_loss),
        "loss change": (LossChange(cfg.loss_threshold, cfg.window), train_loss),
        "weight change": (WeightChange(cfg.weight_threshold, cfg.window), snaps.weights),
        "early stopping": (es, val_loss),
    }
    stops = {}
    for name, (criterion, series) in criteria.items():
        epoch = first_stop(criterion, series)
        last = len(series) - 1 if epoch is None else epoch
        used = last
        if name == "early stopping":
            used = es.scan(series[: last + 1])[3]  # the restored (best) epoch
        stops[name] = {"stop_epoch": epoch, "model_epoch": used, "test_acc": test_acc[used], "fired": epoch is not None}
    if cfg.control:
        stops["early stopping"] = {**stops["fixed"], "control": "the fixed schedule's model"}
    tested = stops["early stopping"]["model_epoch"]
    paired = {name: base.paired_correct(per_example.per_epoch[tested], per_example.per_epoch[s["model_epoch"]])
              for name, s in stops.items() if name != "early stopping"}
    lc, wc = LossChange(cfg.loss_threshold, cfg.window), WeightChange(cfg.weight_threshold, cfg.window)
    values = {"loss change": [lc.value(train_loss[: i + 1]) for i in range(len(hist))],
              "weight change": [wc.value(snaps.weights[: i + 1]) for i in range(len(hist))]}
    real = base.train([*common, "stop.criteria=[\"early_stopping\"]", f"stop.patience={cfg.patience}",
                       "stop.restore_best=true"], workdir, "early-stopping")
    return {"curves": {"train_loss": train_loss, "val_loss": val_loss, "test_acc": test_acc}, "stops": stops,
            "criterion_values": values, "thresholds": {"loss change": cfg.loss_threshold,
                                                       "weight change": cfg.weight_threshold},
            "pipeline_early_stopping": {"test_acc": real.final["test_acc"], "epochs": real.summary["epochs"],
                                        "restored_epoch": real.summary["stop"]["restored_best_epoch"],
                                        "stop_reason": real.summary["stop_reason"]},
            "best_test_acc": max(test_acc), "best_test_epoch": test_acc.index(max(test_acc)),
            "train_size": full.summary["sizes"]["train"], "paired": paired, "control": cfg.control}


def plot(result: dict) -> dict:
    c = result["curves"]
    epochs = range(len(c["train_loss"]))
    fig, axes = base.new_figure(13, 4.2, ncols=2)
    ax = axes[0][0]
    ax.plot(epochs, c["train_loss"], label="train loss")
    ax.plot(epochs, c["val_loss"], label="val loss")
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title=f"MNIST-1D MLP, {result['train_size']} training signals")
    ax2 = ax.twinx()
    ax2.plot(epochs, c["test_acc"], color="C2", label="test acc")
    ax2.set_ylabel("test accuracy")
    for (name, s), color in zip(result["stops"].items(), ("C3", "C4", "C5", "C6"), strict=True):
        e = s["stop_epoch"] if s["stop_epoch"] is not None else len(c["train_loss"]) - 1
        ax.axvline(e, color=color, ls="--", label=f"{name}: epoch {s['stop_epoch']} (test {s['test_acc']:.0%})")
    ax.legend(fontsize=7, loc="upper center")
    ax = axes[0][1]
    for name, values in result["criterion_values"].items():
        ax.plot([i for i, v in enumerate(values) if v is not None], [abs(v) for v in values if v is not None],
                label=f"{name} (threshold {result['thresholds'][name]:g})")
    ax.set(xlabel="epoch", ylabel="criterion value", yscale="log", title="Loss change and weight change per epoch")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"stopping": fig}


def verdict(result: dict) -> dict:
    stops, real = result["stops"], result["pipeline_early_stopping"]
    picked = stops["early stopping"]
    criteria = [base.criterion(f"test accuracy: early stopping - {name} (paired)", *base.mean_interval(d), 0.0,
                               method="paired t over test examples", n=len(d))
                for name, d in result["paired"].items()]
    # the pipeline's early-stopped run restores the best epoch: the same epoch and (within 1 point: the two runs
    # differ only in when they stop) the same test accuracy as that epoch of the full run
    restores = base.check("pipeline early stopping restores the best epoch",
                          real["restored_epoch"] == stops.get("early stopping", {}).get("model_epoch")
                          and abs(real["test_acc"] - picked["test_acc"]) <= 0.01 if not result.get("control")
                          else True, {"restored": real["restored_epoch"], "test_acc": round(real["test_acc"], 4)},
                          "the full run's best-validation epoch, test accuracy within 1 point")
    evidence = {name: {"stop epoch": s["stop_epoch"], "model epoch": s["model_epoch"],
                       "test_acc": round(s["test_acc"], 4)} for name, s in stops.items()}
    ranking = sorted(stops, key=lambda n: -stops[n]["test_acc"])
    evidence.update({"ranking by test accuracy (best first)": ranking,
                     "pipeline early stopping (restored)": {"test_acc": round(real["test_acc"], 4),
                                                           "restored_epoch": real["restored_epoch"],
                                                           "epochs run": real["epochs"]},
                     "best test acc of any epoch (oracle)": {"test_acc": round(result["best_test_acc"], 4),
                                                             "epoch": result["best_test_epoch"]},
                     "literature": LITERATURE})
    if ranking[0] != "early stopping":
        evidence["remark"] = (f"{ranking[0]} stopped at a better test accuracy than validation early stopping "
                              f"({stops[ranking[0]]['test_acc']:.1%} vs {picked['test_acc']:.1%})")
    return base.decide(CLAIM, [*criteria, restores], evidence,
                       "95% intervals of (test accuracy of early stopping's restored model) - (each other "
                       "criterion's model), paired over test examples, > 0; the pipeline's early-stopped run "
                       "restores the full run's best-validation epoch (test accuracy within 1 point)")
