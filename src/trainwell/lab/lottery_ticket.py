"""lottery-ticket: iterative magnitude pruning with reset to theta_0 finds sparse subnetworks that train as well
as the dense net, better than the same mask re-initialized or a random mask of the same density.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks" (ICLR); late
rewinding: Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis".
The rounds are :func:`trainwell.lottery.lottery` (pipeline fits): an MNIST-1D MLP, ``rate`` of the surviving
weights pruned per round per layer (the output layer at half that rate).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass

from trainwell.config import load_config
from trainwell.lab import base
from trainwell.lottery import lottery

NAME = "lottery-ticket"
CLAIM = "Iterative magnitude pruning with reset beats random re-initialization and random pruning at the same " \
        "density (<= 20% of weights left) and reaches its best validation loss no later than the dense net"
PAPER = "Frankle & Carbin 2019, The Lottery Ticket Hypothesis"
EXPECTED_S = {"quick": 16, "default": 41}


@dataclass
class Config:
    rounds: int = 3  # 0.55^3 = 17% of each hidden layer, 0.775^3 = 47% of the output layer: <= 20% overall
    rate: float = 0.45
    epochs: int = 15
    lr: float = 3e-3
    rewind: float = 0.05
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(rounds=2, rate=0.65, epochs=6, rewind=0.0)


def run(cfg: Config, workdir=None) -> dict:
    c = load_config(None, [*base.LAB_SETTINGS, "name=lottery", "data.name=mnist1d", "model.kind=mlp",
                           "model.hidden=[100, 100]", "optim.name=adam", f"optim.lr={cfg.lr}",
                           f"train.epochs={cfg.epochs}", f"train.seed={cfg.seed}"])

    def where(name):
        return None if workdir is None else f"{workdir}/{name}"

    with tempfile.TemporaryDirectory(prefix="trainwell-lab-lottery-") as tmp:
        rows = {}
        for name, kw in (("reinit", {"control": "reinit"}), ("random", {"control": "random"})):
            rows[name] = [asdict(r) for r in lottery(c, cfg.rounds, rate=cfg.rate, out=where(name) or f"{tmp}/{name}",
                                                     quiet=True, force=True, **kw)]
        if cfg.rewind:
            rows["rewind"] = [asdict(r) for r in lottery(c, cfg.rounds, rate=cfg.rate, rewind=cfg.rewind,
                                                         out=where("rewind") or f"{tmp}/rewind", quiet=True,
                                                         force=True)]
    for table in rows.values():
        for r in table:
            r.pop("run_dir", None)
    return {"rows": rows, "rounds": cfg.rounds, "rate": cfg.rate, "rewind": cfg.rewind}


def _series(result: dict):
    tickets = [r for r in result["rows"]["reinit"] if r["kind"] == "ticket"]
    reinit = [r for r in result["rows"]["reinit"] if r["kind"] == "reinit"]
    random = [r for r in result["rows"]["random"] if r["kind"] == "random"]
    rewind = [r for r in result["rows"].get("rewind", []) if r["kind"] == "ticket"]
    return tickets, reinit, random, rewind


def plot(result: dict) -> dict:
    tickets, reinit, random, rewind = _series(result)
    fig, ax = base.new_figure(6, 4)
    ax = ax[0][0]
    for rows, style, label in ((tickets, "o-", "ticket (reset to θ0)"), (reinit, "s--", "same mask, re-initialized"),
                               (random, "^:", "random mask"), (rewind[1:], "d-.", "ticket, late rewinding")):
        if rows:
            ax.plot([100 * r["density"] for r in rows], [r["test_acc"] for r in rows], style, label=label)
    ax.axhline(tickets[0]["test_acc"], color="gray", lw=0.8, label="dense")
    ax.set(xscale="log", xlabel="weights remaining (%)", ylabel="test accuracy", title="Lottery tickets (MNIST-1D MLP)")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"accuracy_vs_density": fig}


def verdict(result: dict) -> dict:
    tickets, reinit, random, rewind = _series(result)
    dense, last = tickets[0], tickets[-1]
    evidence = {"dense": {"test_acc": dense["test_acc"], "best_val_step": dense["early_stop_step"]},
                "ticket": {"density": round(last["density"], 4), "test_acc": last["test_acc"],
                           "best_val_step": last["early_stop_step"]},
                "reinit": {"test_acc": reinit[-1]["test_acc"]}, "random": {"test_acc": random[-1]["test_acc"]},
                "per_round": [{"density": round(t["density"], 4), "ticket": t["test_acc"],
                               "reinit": ri["test_acc"], "random": ra["test_acc"]}
                              for t, ri, ra in zip(tickets[1:], reinit, random, strict=False)]}
    if rewind:
        evidence["late_rewinding"] = {"rewind": result["rewind"], "test_acc": rewind[-1]["test_acc"]}
    sparse = last["density"] <= 0.2 + 1e-9
    beats = last["test_acc"] > reinit[-1]["test_acc"] and last["test_acc"] > random[-1]["test_acc"]
    early = (last["early_stop_step"] is not None and dense["early_stop_step"] is not None
             and last["early_stop_step"] <= dense["early_stop_step"])
    evidence["checks"] = {"density_at_most_20pct": sparse, "beats_both_controls": beats,
                          "best_val_no_later_than_dense": early}
    return base.make_verdict(CLAIM, sparse and beats and early, evidence,
                             "final density <= 20%; the ticket's test accuracy > both controls' at that density; "
                             "the ticket's best-validation-loss step <= the dense net's")
