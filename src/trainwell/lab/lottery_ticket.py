"""lottery-ticket: iterative magnitude pruning with reset to theta_0 finds sparse subnetworks that train as well
as the dense net, better than the same mask re-initialized or a random mask of the same density.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks" (ICLR); late
rewinding: Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis".
The rounds are :func:`trainwell.lottery.lottery` (pipeline fits): an MNIST-1D MLP, ``rate`` of the surviving
weights pruned per round per layer (the output layer at half that rate).

Verdict, each part of the claim with its uncertainty (test accuracies are proportions of the same test set;
Newcombe's interval of a difference of proportions, a conservative one for arms evaluated on the same examples):
the ticket beats the same mask re-initialized and a random mask of the same density (intervals above 0), it
matches the dense net (interval of ticket - dense above -1 point), and it reaches its best validation loss no later
than the dense net (Frankle & Carbin's early-stopping iteration). That last part can only be decided when the dense
net's validation loss has turned before the end of training; while it is still falling at the last step the part
is inconclusive, so the default schedule is long enough for it to turn. Control: the ticket replaced by the same
mask re-initialized (the reset to theta_0, the component under test, removed).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from trainwell.config import load_config
from trainwell.lab import base
from trainwell.lottery import lottery
from trainwell.rundir import read_jsonl

NAME = "lottery-ticket"
CLAIM = "Iterative magnitude pruning with reset to theta_0 finds a ticket (<= 20% of weights left) that beats random " \
        "re-initialization and random pruning at the same density, matches the dense net's test accuracy and " \
        "reaches its best validation loss no later than the dense net"
PAPER = "Frankle & Carbin 2019, The Lottery Ticket Hypothesis"
CONTROL = "the ticket replaced by the same mask re-initialized at random: the reset to theta_0 removed"
EXPECTED_S = {"quick": 16, "default": 48}
LITERATURE = "Frankle & Carbin 2019 (abstract, figs. 3-4; LeNet-300-100 on MNIST): tickets of 10-20% of the " \
             "weights and larger learn faster than the original net and reach higher test accuracy; random " \
             "re-initialization of the same mask learns slower and worse. MNIST-1D notebook: dense 65-66%, tickets " \
             "70-75% at 71-94% sparsity"
MATCH_MARGIN = 0.01  # "matches the dense net": at most this far below it
# quick (6 epochs, 2 rounds): the ticket is still 4-9 points below the dense net (seeds 0-2), a decided "fail" of
# the match that the 30-epoch default size does not show (+0.3 points on seed 0): the quick size cannot decide
QUICK_DECIDES = False


@dataclass
class Config:
    rounds: int = 3  # 0.55^3 = 17% of each hidden layer, 0.775^3 = 47% of the output layer: <= 20% overall
    rate: float = 0.45
    epochs: int = 30  # long enough for the dense net's validation loss to turn (its early-stopping iteration)
    lr: float = 3e-3
    rewind: float = 0.05
    seed: int = 0
    control: bool = False

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
        if cfg.rewind and not cfg.control:
            rows["rewind"] = [asdict(r) for r in lottery(c, cfg.rounds, rate=cfg.rate, rewind=cfg.rewind,
                                                         out=where("rewind") or f"{tmp}/rewind", quiet=True,
                                                         force=True)]
        for table in rows.values():
            for r in table:
                run_dir = Path(r.pop("run_dir"))
                r["last_step"] = read_jsonl(run_dir / "metrics.jsonl")[-1]["step"]
                r["test_size"] = json.loads((run_dir / "summary.json").read_text())["sizes"]["test"]
    if cfg.control:  # the ticket replaced by the same mask re-initialized
        reinit = {r["round"]: r for r in rows["reinit"] if r["kind"] == "reinit"}
        rows["reinit"] = [{**reinit[r["round"]], "kind": "ticket"} if r["kind"] == "ticket" and r["round"] in reinit
                          else r for r in rows["reinit"]]
    return {"rows": rows, "rounds": cfg.rounds, "rate": cfg.rate, "rewind": 0.0 if cfg.control else cfg.rewind,
            "control": cfg.control}


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


def _diff(name: str, a: dict, b: dict, threshold: float = 0.0) -> dict:
    n1, n2 = a.get("test_size", 1000), b.get("test_size", 1000)
    return base.criterion(name, *base.diff_proportions(round(a["test_acc"] * n1), n1, round(b["test_acc"] * n2), n2),
                          threshold, method="Newcombe hybrid score", n=n1 + n2)


def _earlier(ticket: dict, dense: dict) -> dict:
    """Ticket's early-stopping step <= the dense net's; undecidable while the dense net still improves at the end."""
    t, d = ticket["early_stop_step"], dense["early_stop_step"]
    name = "best-validation step: ticket <= dense"
    if t is None or d is None or d >= dense.get("last_step", d + 1):
        c = base.check(name, True, {"ticket": t, "dense": d, "dense last step": dense.get("last_step")},
                       "decidable once the dense net's validation loss turns before the last step")
        return {**c, "status": "inconclusive"}
    return base.check(name, t <= d, {"ticket": t, "dense": d}, "ticket <= dense")


def verdict(result: dict) -> dict:
    tickets, reinit, random, rewind = _series(result)
    dense, last = tickets[0], tickets[-1]
    evidence = {"dense": {"test_acc": dense["test_acc"], "best_val_step": dense["early_stop_step"],
                          "last_step": dense.get("last_step")},
                "ticket": {"density": round(last["density"], 4), "test_acc": last["test_acc"],
                           "best_val_step": last["early_stop_step"]},
                "reinit": {"test_acc": reinit[-1]["test_acc"]}, "random": {"test_acc": random[-1]["test_acc"]},
                "per_round": [{"density": round(t["density"], 4), "ticket": t["test_acc"],
                               "reinit": ri["test_acc"], "random": ra["test_acc"]}
                              for t, ri, ra in zip(tickets[1:], reinit, random, strict=False)],
                "literature": LITERATURE}
    if rewind:
        evidence["late_rewinding"] = {"rewind": result["rewind"], "test_acc": rewind[-1]["test_acc"]}
    criteria = [
        base.check("final density <= 20%", last["density"] <= 0.2 + 1e-9, round(last["density"], 4), "<= 0.2"),
        _diff("test accuracy: ticket - same mask re-initialized", last, reinit[-1]),
        _diff("test accuracy: ticket - random mask", last, random[-1]),
        _diff(f"test accuracy: ticket - dense (matches: > -{MATCH_MARGIN:g})", last, dense, -MATCH_MARGIN),
        _earlier(last, dense),
    ]
    return base.decide(CLAIM, criteria, evidence,
                       "final density <= 20%; 95% intervals (Newcombe) of the ticket's test accuracy minus the "
                       "re-initialized and the random mask's > 0, minus the dense net's > -1 point; the ticket's "
                       "best-validation step <= the dense net's (inconclusive while the dense net still improves at "
                       "the last step)")
