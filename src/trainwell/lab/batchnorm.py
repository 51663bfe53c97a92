"""batchnorm: BatchNorm speeds training and makes a deep net robust to a bad initialization; training only its
gamma and beta learns far above chance (and above as many random parameters); dropout before BatchNorm shifts
the variance, and both fixes reduce the shift.

- Ioffe & Szegedy 2015, "Batch normalization" (ICML): BN before the nonlinearity; faster training, less
  sensitivity to initialization. Here: a 6-hidden-layer ReLU MLP on MNIST-1D trained with SGD + momentum, with
  and without BN, from He init and from the "small random numbers" init N(0, 0.01^2) that collapses the signal.
- Frankle, Schwab & Morcos 2021, "Training BatchNorm and only BatchNorm" (ICLR): every weight frozen at its random
  init except the BN gammas and betas (``train.trainable = "norm"``). Control: the same net with BN's gamma/beta
  frozen and the same number of randomly chosen weights and biases trained instead (a constraint callback puts
  every other entry back after each optimizer step, so only the chosen entries move).
- Li, Chen, Hu & Yang 2019, "Understanding the disharmony between dropout and batch normalization by variance
  shift" (CVPR): inverted dropout (keep p) before a BN layer makes its running variance the training variance,
  larger than the variance it sees at test time (ratio p for zero-mean inputs). The pipeline measures the ratio
  eval-time input variance / running variance per BN layer (``summary["variance_shift"]``); the fixes are
  dropout only after the last BN (``model.dropout_where = "last"``) and Uout noise (``model.dropout_mode = "uout"``).
Verdict, each criterion an effect with a 95% interval: (1) speed, He init, each arm at its best learning rate of a
small grid (by its final training loss): the plain net's per-example training loss minus BN's, paired over the
training examples (both nets in eval mode), above 0; (2) rescue, N(0, 0.01^2) init: the plain net's mean training
loss above 0.95 ln 10 (it stays at chance) and its loss minus BN's, paired, above 0.2 ln 10; (3) BN only, each arm
trained from ``subset_inits`` random inits and its correctness averaged per held-out example (the 1000 test signals
and the validation split, which no run selects on): its accuracy above twice chance (t interval over the examples),
and its accuracy minus the random subset's, paired over the same examples, above 0; (4) variance shift, per channel
of every BN layer after the first (measured on the test split): 1 - ratio with dropout before BN above 0.15, and for
each fix half that shift minus its own |1 - ratio| above 0 (Welch, the channels as samples). Control: BatchNorm
replaced by the identity (``model.norm = "none"``) in every arm; the BN-only arm then has nothing to train (every
parameter is put back after each step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from trainwell.lab import base
from trainwell.nn.norm import norm_parameters
from trainwell.train.callbacks import Callback, State

NAME = "batchnorm"
CLAIM = "BatchNorm speeds training and rescues a bad init; training only BN's gamma/beta is far above chance and " \
        "above as many random parameters; dropout before BN shifts the variance and both fixes reduce the shift"
PAPER = "Ioffe & Szegedy 2015; Frankle et al. 2021 (BN only); Li et al. 2019 (dropout-BN variance shift)"
CONTROL = "BatchNorm replaced by the identity (model.norm = none) in every arm; the BN-only arm has nothing to train"
# default: 265 s wall for 3 seeds at load average ~4.8 on 2 cores (105 s of CPU, a factor ~2.5): ~35 s per seed;
# quick: 6.7 s per seed at load ~5 (a factor ~2.5): ~3 s
EXPECTED_S = {"quick": 3, "default": 22}
# At quick size (48 units, 3 epochs, 1000 training signals) BN-only and the random subset are both near chance and
# the speed comparison is decided by 3 epochs of noise: the size cannot show the claim either way.
QUICK_DECIDES = False
LN10 = math.log(10)
LITERATURE = "Ioffe & Szegedy 2015, abstract (ImageNet Inception): BN reaches the baseline's accuracy in 14x fewer " \
             "steps; Frankle et al. 2021, abstract (CIFAR-10): BN-only ResNet-866 82% test accuracy, above " \
             "as many random parameters; Li et al. 2019, sec. 3: variance ratio p for dropout keep p before BN. " \
             "Ours is a 6-layer MLP on MNIST-1D for 8 epochs: a smaller net and task, where BN-only (about 1.5k " \
             "parameters) stays far below full training"


class TrainRandomSubset(Callback):
    """Train only ``count`` randomly chosen entries of the non-normalization parameters: after every optimizer step
    every other entry is put back to its value at the start of training (an elementwise optimizer then behaves as
    if only the chosen entries were parameters)."""

    def __init__(self, count: int, seed: int = 0):
        self.count, self.seed = count, seed
        self.params: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []

    def on_fit_start(self, state: State) -> None:
        norm = {id(p) for p in norm_parameters(state.model)}
        params = [p for p in state.model.parameters() if id(p) not in norm]
        sizes = [p.numel() for p in params]
        g = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(sum(sizes), generator=g)[: self.count]
        flat = torch.zeros(sum(sizes), dtype=torch.bool)
        flat[chosen] = True
        self.params = []
        for p, mask in zip(params, flat.split(sizes), strict=True):
            self.params.append((p, p.detach().clone(), mask.reshape(p.shape).to(p.device)))
        # gamma and beta stay at their init (1, 0): the control trains no normalization parameter
        self.norm = [(p, p.detach().clone()) for p in norm_parameters(state.model)]

    @torch.no_grad()
    def on_batch_end(self, state: State) -> None:
        for p, p0, mask in self.params:
            p.copy_(torch.where(mask, p, p0))
        for p, p0 in self.norm:
            p.copy_(p0)


@dataclass
class Config:
    depth: int = 6
    width: int = 128
    epochs: int = 8
    lr: float = 0.02
    # the speed comparison gives each arm (He init, with and without BN) its best rate of this grid
    lr_grid: list[float] = field(default_factory=lambda: [0.005, 0.02, 0.05])
    subset_lr: float = 0.01
    subset_epochs: int = 8
    # BN-only and the random subset are each trained from this many random inits; their correctness is averaged
    # per held-out example (test and validation splits), so the paired difference is not one init's luck
    subset_inits: int = 3
    keep: float = 0.5
    val_fraction: float = 0.1
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(width=48, epochs=3, subset_epochs=3, val_fraction=0.75, lr_grid=[0.02], subset_inits=1)


@torch.no_grad()
def channel_ratios(trained: base.Trained, split: str = "test") -> list[list[float]]:
    """Per BatchNorm layer, per channel: the variance of its input in eval mode on ``split`` over its running
    variance (1 = no shift; Li et al. 2019)."""
    from trainwell.nn.variance_shift import _BN, _channel_var
    from trainwell.pipeline import load_data

    splits, _ = load_data(trained.cfg)
    x = getattr(splits, split)[0]
    model = trained.model
    layers = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    inputs = {id(m): [] for m in layers}
    hooks = [m.register_forward_pre_hook(lambda mod, args: inputs[id(mod)].append(args[0].detach()))
             for m in layers]
    was = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return [(_channel_var(torch.cat(inputs[id(m)])) / m.running_var.clamp_min(1e-12)).tolist() for m in layers]


def _speed(cfg: Config, common: list[str], workdir) -> tuple[dict, dict]:
    """Each (init, norm) arm trained with SGD + momentum; with He init, at every rate of the grid (the arm keeps
    its rate with the lowest final training loss). Returns the arms and their per-example training losses."""
    speed, losses = {}, {}
    for init in ("he_normal", "small_normal"):
        for norm in ("none", "batch"):
            best = None
            for lr in (cfg.lr_grid if init == "he_normal" else [cfg.lr]):
                used = "none" if cfg.control else norm
                t = base.train([*common, "optim.name=momentum", f"optim.lr={lr}", f"train.epochs={cfg.epochs}",
                                f"init.scheme={init}", f"model.norm={used}"], workdir, f"{init}-{norm}-lr{lr}")
                final = t.history[-1]["train_loss"]
                final = final if final is not None and math.isfinite(final) else math.inf
                if best is None or final < best[0]:
                    best = (final, lr, t)
            final, lr, t = best
            key = f"{init}/{norm}"
            losses[key] = base.example_losses(t)
            speed[key] = {"init": init, "norm": norm, "lr": lr, "curve": [h["train_loss"] for h in t.history],
                          "final_train_loss": final if math.isfinite(final) else None,
                          "eval_train_loss": sum(losses[key]) / len(losses[key]),
                          "train_acc": t.final["train_acc"], "test_acc": t.final["test_acc"]}
    return speed, losses


def _mean(values) -> float:
    xs = list(values)
    return sum(xs) / len(xs)


def _held_out(trained: base.Trained) -> list[int]:
    """Per example of the test split, then of the validation split (neither trained on, and no model is chosen
    by its validation score here: both are held-out examples), 1 if the model classifies it right."""
    return base.correct(trained, "test") + base.correct(trained, "val")


def _subsets(cfg: Config, common: list[str], workdir) -> tuple[list[dict], list[dict], dict]:
    """``cfg.subset_inits`` pairs of runs, each from its own random init (``train.seed``): BN's gamma/beta only,
    and as many randomly chosen weights and biases. Returns the runs and, per held-out example, each arm's
    correctness averaged over the inits (the two arms paired per example)."""
    runs: dict[str, list] = {"bn_only": [], "random": []}
    hits: dict[str, list] = {}
    for r in range(cfg.subset_inits):
        seed = cfg.seed + 1000 * r  # replicate r of seed s never meets another seed's replicate
        arm = [*common, f"train.seed={seed}"]
        if cfg.control:  # no gamma or beta to train: every parameter is put back after each step
            only = base.train(arm, workdir, f"bn-only-{r}", callbacks=[TrainRandomSubset(0, seed)])
            count = 0
        else:
            only = base.train([*arm, "train.trainable=norm"], workdir, f"bn-only-{r}")
            count = only.summary["trainable_params"]
        rand = base.train(arm, workdir, f"random-subset-{r}", callbacks=[TrainRandomSubset(count, seed)])
        for key, t in (("bn_only", only), ("random", rand)):
            runs[key].append({"seed": seed, "trainable": count, "params": t.summary["params"],
                              "test_acc": t.final["test_acc"], "train_acc": t.final["train_acc"]})
            hits.setdefault(key, []).append(_held_out(t))
    correct = {key: [round(_mean(col), 4) for col in zip(*rows, strict=True)] for key, rows in hits.items()}
    return runs["bn_only"], runs["random"], correct


def run(cfg: Config, workdir=None) -> dict:
    common = ["data.name=mnist1d", f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
              f"model.hidden={[cfg.width] * cfg.depth}", "train.batch_size=100", f"train.seed={cfg.seed}",
              "stop.divergence_factor=none"]
    speed, losses = _speed(cfg, common, workdir)
    norm = "model.norm=none" if cfg.control else "model.norm=batch"
    adam = ["optim.name=adam", f"optim.lr={cfg.subset_lr}", f"train.epochs={cfg.subset_epochs}", norm]
    # the learning rate decays to 0, so the running statistics settle on the final weights: what is left of the
    # eval/running variance ratio is the shift, not the lag of a moving average behind moving weights
    settle = ["optim.schedule=cosine"]
    only, rand, correct = _subsets(cfg, [*common, *adam], workdir)
    subset = {"bn_only": {"trainable": only[0]["trainable"], "test_acc": _mean(r["test_acc"] for r in only),
                          "train_acc": _mean(r["train_acc"] for r in only)},
              "random": {"trainable": rand[0]["trainable"], "test_acc": _mean(r["test_acc"] for r in rand),
                         "train_acc": _mean(r["train_acc"] for r in rand)},
              "runs": {"bn_only": only, "random": rand}, "total_params": only[0]["params"], "correct": correct}
    shift = {}
    for name, extra in (("dropout before BN", []), ("dropout after the last BN", ["model.dropout_where=last"]),
                        ("uout", ["model.dropout_mode=uout"])):
        t = base.train([*common, *adam, *settle, f"model.dropout_keep={cfg.keep}", *extra], workdir,
                       name.replace(" ", "-"))
        per_channel = channel_ratios(t)
        shift[name] = {"ratios": [round(sum(r) / len(r), 4) for r in per_channel],
                       "channels": [round(v, 5) for r in per_channel[1:] for v in r],  # every BN layer after the first
                       "test_acc": t.final["test_acc"]}
    return {"speed": speed, "losses": losses, "subset": subset, "shift": shift, "keep": cfg.keep,
            "depth": cfg.depth, "chance": 0.1, "control": cfg.control}


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(14, 4, ncols=3)
    ax = axes[0][0]
    for key, r in result["speed"].items():
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], "o-" if r["norm"] == "batch" else "s--",
                label=f"{key} (lr {r['lr']:g})")
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{result['depth']}-layer ReLU MLP, SGD + momentum")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    s = result["subset"]
    ax.bar(["BN gamma/beta only", "random params"], [s["bn_only"]["test_acc"], s["random"]["test_acc"]])
    ax.axhline(result["chance"], color="gray", ls=":", label="chance")
    ax.set(ylabel="test accuracy", title=f"{s['bn_only']['trainable']} of {s['total_params']} parameters trained")
    ax.legend()
    ax = axes[0][2]
    for name, r in result["shift"].items():
        ax.plot(range(1, len(r["ratios"]) + 1), r["ratios"], "o-", label=name)
    ax.axhline(1.0, color="gray", ls=":")
    ax.set(xlabel="BN layer", ylabel="eval variance / running variance",
           title=f"Variance shift, dropout keep {result['keep']}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"batchnorm": fig}


def _paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    return base.mean_interval([x - y for x, y in zip(a, b, strict=True)])


def _shift_criteria(sh: dict) -> list[dict]:
    before = [1 - r for r in sh["dropout before BN"]["channels"]]
    if not before:
        return [base.check("a BN layer after dropout to shift", False, 0, ">= 1 layer")]
    out = [base.criterion("dropout before BN: 1 - eval/running variance", *base.mean_interval(before), 0.15,
                          method="t interval over the channels of BN layers 2+", n=len(before))]
    for fix in ("dropout after the last BN", "uout"):
        left = [abs(1 - r) for r in sh[fix]["channels"]]
        out.append(base.criterion(f"{fix}: half the shift before - its own |1 - ratio|",
                                  *base.diff_means([0.5 * b for b in before], left), 0.0,
                                  method="Welch t over channels", n=len(left)))
    return out


def verdict(result: dict) -> dict:
    sp, s, sh, loss = result["speed"], result["subset"], result["shift"], result["losses"]
    n_train, n_test = len(loss["he_normal/none"]), len(s["correct"]["bn_only"])
    plain = loss["small_normal/none"]
    runs = len(s.get("runs", {}).get("bn_only", [])) or 1
    inits = f"each averaged over {runs} init{'s' if runs > 1 else ''}"
    criteria = [
        base.criterion("He init, best rates: training loss plain - BN", *_paired(loss["he_normal/none"],
                                                                              loss["he_normal/batch"]), 0.0,
                       method="paired t over training examples (eval mode)", n=n_train, unit="nats"),
        base.criterion("N(0, 0.01^2) init: plain net's training loss (stuck at chance)", *base.mean_interval(plain),
                       0.95 * LN10, method="t interval over training examples", n=n_train, unit="nats"),
        base.criterion("N(0, 0.01^2) init: training loss plain - BN", *_paired(plain, loss["small_normal/batch"]),
                       0.2 * LN10, method="paired t over training examples (eval mode)", n=n_train, unit="nats"),
        base.criterion("BN only: held-out accuracy", *base.mean_interval(s["correct"]["bn_only"]),
                       2 * result["chance"], method=f"t interval over held-out examples ({inits})", n=n_test),
        base.criterion("held-out accuracy: BN only - random subset",
                       *_paired(s["correct"]["bn_only"], s["correct"]["random"]), 0.0,
                       method=f"paired t over held-out examples ({inits})", n=n_test),
        *_shift_criteria(sh),
    ]
    logged = {k: None if v["final_train_loss"] is None else round(v["final_train_loss"], 4) for k, v in sp.items()}
    evidence = {"final train loss (training mode, logged)": logged,
                "train loss (eval mode)": {k: round(v["eval_train_loss"], 4) for k, v in sp.items()},
                "learning rate chosen": {k: v["lr"] for k, v in sp.items()},
                "test_acc": {k: round(v["test_acc"], 4) for k, v in sp.items()},
                "bn only vs random subset (test acc, mean over inits)": {"bn_only": round(s["bn_only"]["test_acc"], 4),
                                                        "random": round(s["random"]["test_acc"], 4),
                                                        "trainable": s["bn_only"]["trainable"],
                                                        "total": s["total_params"]},
                "variance ratios per BN layer": {k: v["ratios"] for k, v in sh.items()},
                "expected ratio with dropout before BN": result["keep"], "literature": LITERATURE}
    return base.decide(CLAIM, criteria, evidence,
                       "95% intervals: He init (each arm at its best rate), the plain net's training loss - BN's > 0 "
                       "(paired over training examples); N(0, 0.01^2) init, the plain net's loss > 0.95 ln 10 and its "
                       "loss - BN's > 0.2 ln 10; BN-only held-out accuracy > 2x chance and above the random "
                       "subset's (paired per held-out example, each arm averaged over its inits); dropout before BN: "
                       "1 - variance ratio > 0.15, and each fix leaves less than half of it (Welch over channels)")
