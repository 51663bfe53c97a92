"""lr-diagnosis: the doctor reads a loss curve and names the learning rate — too high, high, good, too low — and
gets it right for four learning rates, over seeds and two batch sizes.

cs231n, "Neural Networks Part 3" (babysitting the learning process, the loss-vs-epoch sketch the lecture shows):
a very high rate makes the loss rise or become NaN; a high one drops fast and then plateaus at a worse value; a good
one decreases steadily; a low one decreases slowly, nearly linearly. An MLP on scikit-learn's digits is trained by
the pipeline with plain SGD at each rate (chosen to show each regime on this task: 10 diverges, 1 drops and
plateaus high, 0.3 decreases steadily, 0.01 creeps); the label is the pipeline's own post-flight verdict
(:func:`trainwell.doctor.diagnosis.learning_rate_diagnosis` on the per-step training losses,
``summary["doctor"]``), compared with the label each rate was chosen to show. The rates and seeds of one batch size
train as one population (:func:`trainwell.lab.populations.train_many`); every member's post-flight reads its own
curve, as a fit's does.

Verdict: the fraction of curves the doctor labels as their rate was chosen to show, with its Wilson interval, above
3 in 4 (chance is 1 in 4: four labels), and for each of the four rates the fraction of its curves labelled right
above one half (Wilson): a doctor that never names one of the regimes fails, however well it reads the others. The
quick size (4 curves, one per rate) cannot decide it. Control: every run trained at
the "good" rate while the expected labels stay (the learning rate made equal to the baseline): a doctor that reads
the curve can then be right on at most one curve in four.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainwell.lab import base, populations

NAME = "lr-diagnosis"
CLAIM = "The doctor labels loss curves from four learning rates as too high / high / good / too low, correctly " \
        "over seeds and two batch sizes"
PAPER = "cs231n, Neural Networks Part 3 (babysitting the learning process: loss curves by learning rate)"
CONTROL = "every curve trained at the good rate (0.3) while the expected labels stay too high / high / good / too " \
          "low: the learning rate made equal to the baseline"
EXPECTED_S = {"quick": 3, "default": 3}
THRESHOLD = 0.75  # right on more than 3 curves in 4 (chance: 1 in 4)
PER_LABEL = 0.5  # each rate's curves: right on more than half
LITERATURE = "cs231n, Neural Networks Part 3 (babysitting the learning process): a sketch of loss against epoch for " \
             "very high, high, good and low rates, no data or accuracy of reading it; ours labels real curves of " \
             "an MLP on 8x8 digits by the doctor's rule: every too-high, good and too-low curve right, but the " \
             "'high' rate (1.0) read 'too high' (the loss oscillates) or 'good' and never 'high'"
LABELS = ("too high", "high", "good", "too low")
CHECK = "learning rate (loss curve)"


@dataclass
class Config:
    rates: dict[str, float] = field(default_factory=lambda: {"too high": 10.0, "high": 1.0, "good": 0.3,
                                                             "too low": 0.01})
    batch_sizes: list[int] = field(default_factory=lambda: [50, 200])
    seeds: int = 3
    epochs: int = 10
    hidden: int = 64
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(batch_sizes=[50], seeds=1, epochs=6)


def label_of(doctor: list[dict]) -> str | None:
    """The label in the post-flight learning-rate verdict (its value starts with 'too high:', 'good:', ...)."""
    v = next((d for d in doctor if d["check"] == CHECK and d.get("phase", "post") == "post"), None)
    return None if v is None else v["value"].split(":")[0].strip()


def run(cfg: Config, workdir=None) -> dict:
    keys, runs = [], []
    for bs in cfg.batch_sizes:
        for k in range(cfg.seeds):
            seed = cfg.seed * 100 + k
            for expected, rate in cfg.rates.items():
                lr = cfg.rates["good"] if cfg.control else rate
                keys.append((expected, lr, bs, seed))
                runs.append((["data.name=digits", "model.kind=mlp", f"model.hidden=[{cfg.hidden}, {cfg.hidden}]",
                              "optim.name=sgd", f"optim.lr={lr}", f"train.epochs={cfg.epochs}",
                              f"train.batch_size={bs}", f"train.seed={seed}", "stop.divergence_factor=none"],
                             f"{expected.replace(' ', '-')}-lr{lr}-bs{bs}-seed{seed}"))
    # the rates and seeds of one batch size train as one population (populations.train_many); each member's
    # doctor reads its own per-step losses, as a fit's does
    rows = []
    for (expected, lr, bs, seed), t in zip(keys, populations.train_many(runs, workdir, step_losses=True),
                                           strict=True):
        doc = next(d for d in t.summary["doctor"] if d["check"] == CHECK)
        rows.append({"expected": expected, "lr": lr, "batch_size": bs, "seed": seed,
                     "label": label_of(t.summary["doctor"]), "diagnosis": doc["value"],
                     "losses": [round(v, 5) if v == v else None for v in t.step_losses]})
    return {"rows": rows, "rates": cfg.rates, "control": cfg.control}


def plot(result: dict) -> dict:
    bss = sorted({r["batch_size"] for r in result["rows"]})
    fig, axes = base.new_figure(6 * len(bss), 4, ncols=len(bss))
    colors = dict(zip(LABELS, ("C3", "C1", "C2", "C0"), strict=True))
    for ax, bs in zip(axes[0], bss, strict=True):
        seen = set()
        for r in result["rows"]:
            if r["batch_size"] != bs:
                continue
            ys = [v if v is not None else float("nan") for v in r["losses"]]
            lab = f"lr {r['lr']:g} ({r['expected']}): doctor says {r['label']}"
            ax.plot(ys, color=colors[r["expected"]], lw=0.8, label=None if lab in seen else lab)
            seen.add(lab)
        ax.set(xlabel="step", ylabel="training loss", yscale="log", ylim=(None, 20), title=f"batch size {bs}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return {"loss_curves": fig}


def verdict(result: dict) -> dict:
    rows = result["rows"]
    right = [r["label"] == r["expected"] for r in rows]
    confusion = {}
    for r in rows:
        confusion.setdefault(r["expected"], {}).setdefault(str(r["label"]), 0)
        confusion[r["expected"]][str(r["label"])] += 1
    evidence = {"correct": f"{sum(right)} of {len(rows)}", "confusion (expected -> doctor's label: count)": confusion,
                "rates": result["rates"],
                "wrong": [{k: r[k] for k in ("expected", "lr", "batch_size", "seed", "diagnosis")}
                          for r, ok in zip(rows, right, strict=True) if not ok]}
    evidence["literature"] = LITERATURE
    k, n = sum(right), len(rows)
    criteria = [base.criterion("fraction of curves labelled as their rate was chosen", k / n if n else math.nan,
                               *base.wilson(k, n), THRESHOLD, method="Wilson", n=n)]
    for label in LABELS:
        mine = [ok for r, ok in zip(rows, right, strict=True) if r["expected"] == label]
        hits = sum(mine)
        criteria.append(base.criterion(f"'{label}' curves labelled '{label}'", hits / len(mine) if mine else math.nan,
                                       *base.wilson(hits, len(mine)), PER_LABEL, method="Wilson", n=len(mine)))
    return base.decide(CLAIM, criteria, evidence,
                       f"95% Wilson intervals: the fraction of (learning rate, batch size, seed) curves that get the "
                       f"label their rate was chosen for above {THRESHOLD} (chance 0.25), and for each rate the "
                       f"fraction of its curves labelled right above {PER_LABEL}")
