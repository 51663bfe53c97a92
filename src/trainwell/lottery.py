"""Lottery-ticket experiments (Frankle & Carbin 2019): train, prune by magnitude, reset the survivors to their
initial values (or rewind them to an early iterate theta_k, Frankle et al. 2020), retrain; repeat.

Controls at every density: ``reinit`` (the same mask on a fresh random initialization) and ``random`` (a random
mask of the same per-layer density, from theta_0). Expected: winning tickets at 10-20% density match or beat the
dense network and reach their best validation loss sooner; the controls do worse.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from trainwell import prune
from trainwell.config import Config, config_from_dict
from trainwell.errors import ParameterError, TrainwellError
from trainwell.manifest import record
from trainwell.pipeline import fit, initialize
from trainwell.pipeline.write import write_group_report
from trainwell.runclaim import Claim
from trainwell.rundir import atomic_torch_save, atomic_write_json, read_jsonl
from trainwell.train.callbacks import Callback, State
from trainwell.train.progress import note


@dataclass
class Ticket:
    """A ``setup(model)`` hook for :func:`trainwell.pipeline.fit`: start from ``init_state`` (theta_0 or a rewound
    theta_k) or, for the reinit control, from a fresh initialization seeded by ``reinit_seed``, then prune with
    ``masks``."""

    cfg: Config
    masks: dict[str, torch.Tensor]
    init_state: dict | None = None
    reinit_seed: int | None = None

    def __call__(self, model: torch.nn.Module) -> None:
        if self.reinit_seed is not None:
            scheme = self.cfg.init.scheme if self.cfg.init.scheme != "default" else "standard"
            initialize(model, self.cfg, seed=self.reinit_seed, scheme=scheme)
        if self.init_state is not None:
            model.load_state_dict(self.init_state)
        prune.apply_masks(model, self.masks)

    def save(self, run_dir: Path) -> None:
        """The masks and their sparsity report, beside the run they pruned."""
        atomic_torch_save(run_dir / "masks.pt", {k: v.cpu() for k, v in self.masks.items()})
        atomic_write_json(run_dir / "sparsity.json", prune.sparsity_report(self.masks))


def _fit_ticket(cfg: Config, out: Path, quiet: bool, ticket: Ticket):
    res = fit(cfg, out=out, force=True, quiet=quiet, setup=ticket)
    ticket.save(res.run_dir)
    return res


class Snapshot(Callback):
    """Keep a copy of the model's weights at training step ``step`` (0 = the initialization theta_0)."""

    def __init__(self, step: int = 0):
        self.step = step
        self.state: dict | None = None

    def _take(self, state: State) -> None:
        self.state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def on_fit_start(self, state: State) -> None:
        if self.step == 0:
            self._take(state)

    def on_batch_end(self, state: State) -> None:
        if self.state is None and state.step >= self.step:
            self._take(state)


@dataclass
class RoundResult:
    round: int
    kind: str
    density: float
    test_acc: float
    val_acc: float
    early_stop_step: int | None
    run_dir: str


def _result(r: int, kind: str, masks: dict, res) -> RoundResult:
    history = read_jsonl(res.run_dir / "metrics.jsonl")
    with_val = [h for h in history if h.get("val_loss") is not None]
    best = min(with_val, key=lambda h: h["val_loss"]) if with_val else None
    return RoundResult(r, kind, prune.sparsity_report(masks)["density"], res.summary["final"]["test_acc"],
                       res.summary["final"]["val_acc"], best["step"] if best else None, str(res.run_dir))


def rewind_step(rewind: float, steps_per_run: int) -> int:
    """``rewind`` >= 1 is a step count; 0 < rewind < 1 is a fraction of training."""
    if rewind < 0:
        raise ParameterError("rewind", rewind, "is not allowed: use a step count or a fraction in [0, 1)")
    return int(round(rewind * steps_per_run)) if rewind < 1 else int(rewind)


def lottery(cfg: Config, rounds: int, *, rate: float = 0.2, output_rate: float | None = None, rewind: float = 0,
            control: str | None = None, out: str | Path | None = None, quiet: bool = True,
            scope: str = "layer", force: bool = False) -> list[RoundResult]:
    """Run ``rounds`` pruning rounds after a dense round 0; return one row per trained network."""
    if rounds < 1:
        raise ParameterError("rounds", rounds, "is not allowed: use an integer >= 1")
    if control not in (None, "reinit", "random"):
        raise ParameterError("control", control, "is not allowed: use reinit or random")
    with Claim.take("lottery", out, force=force, name=f"{cfg.name}-lottery", config_hash=cfg.hash()) as claim:
        rows = _rounds(claim, cfg, rounds, rate, output_rate, rewind, control, quiet, scope)
    write_group_report(cfg, claim.path)  # report.html of the whole folder, as a fit writes its own
    return rows


def _rounds(claim: Claim, cfg: Config, rounds: int, rate: float, output_rate: float | None, rewind: float,
            control: str | None, quiet: bool, scope: str) -> list[RoundResult]:
    base = claim.path
    steps = cfg.train.epochs * -(-_train_size(cfg) // cfg.train.batch_size)
    if rewind_step(rewind, steps) > steps:  # no snapshot would be taken: every ticket would start from theta_0
        epochs = f"{cfg.train.epochs} epoch{'s' * (cfg.train.epochs != 1)}"
        raise ParameterError("rewind", int(rewind), f"is past the end of training: the dense run trains {steps} steps "
                             f"({epochs}); use a step count up to {steps} or a fraction in [0, 1)")
    claim.started()
    snap = Snapshot(rewind_step(rewind, steps))
    note(f"prune: round 0 of {rounds}: the dense network", quiet)
    dense = fit(cfg, out=base / "round-0", force=True, quiet=quiet, callbacks=[snap])
    if snap.state is None:  # a stopping criterion ended the dense run before the rewind step
        raise TrainwellError(f"--rewind {rewind:g}: the dense run stopped after {dense.summary.get('steps')} steps "
                             f"({dense.summary.get('stop_reason')}), before step {snap.step}: rewind to an earlier "
                             "step or a fraction of training")
    masks = prune.current_masks(dense.model)
    rows = [_result(0, "ticket", masks, dense)]
    later = config_from_dict({**cfg.to_dict(), "doctor": {**cfg.to_dict()["doctor"], "preflight": False}})
    trained = dense.model
    for r in range(1, rounds + 1):
        masks = prune.magnitude_masks(trained, rate, output_rate, masks=masks, scope=scope)
        left = f"{prune.sparsity_report(masks)['density']:.1%} of the weights"
        note(f"prune: round {r} of {rounds}: the ticket at {left}", quiet)
        ticket = _fit_ticket(later, base / f"round-{r}", quiet, Ticket(later, masks, init_state=snap.state))
        rows.append(_result(r, "ticket", masks, ticket))
        trained = ticket.model
        if control is not None:
            note(f"prune: round {r} of {rounds}: the {control} control at {left}", quiet)
        if control == "reinit":
            res = _fit_ticket(later, base / f"round-{r}-reinit", quiet,
                              Ticket(later, masks, reinit_seed=cfg.train.seed + 1000 + r))
            rows.append(_result(r, "reinit", masks, res))
        elif control == "random":
            rmasks = prune.random_masks(dense.model, masks, seed=cfg.train.seed + r)
            res = _fit_ticket(later, base / f"round-{r}-random", quiet, Ticket(later, rmasks, init_state=snap.state))
            rows.append(_result(r, "random", rmasks, res))
    write_results(rows, base)
    return rows


def _train_size(cfg: Config) -> int:
    from trainwell.pipeline import load_data

    splits, _ = load_data(cfg)
    return len(splits.train[0])


def write_results(rows: list[RoundResult], base: Path) -> None:
    """results.json, results.csv and accuracy_vs_density.png in ``base``."""
    atomic_write_json(base / "results.json", [asdict(r) for r in rows])
    with open(base / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    record(base / "results.csv")
    from trainwell.viz.plots import new_figure, save

    fig, ax = new_figure(figsize=(6, 4))
    for kind, style in (("ticket", "o-"), ("reinit", "s--"), ("random", "^:")):
        pts = [(r.density, r.test_acc) for r in rows if r.kind == kind or (kind != "ticket" and r.round == 0)]
        if kind != "ticket" and len(pts) <= 1:
            continue
        pts.sort(reverse=True)
        ax.plot([100 * d for d, _ in pts], [a for _, a in pts], style, label=kind)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set(xlabel="weights remaining (%)", ylabel="test accuracy", title="Lottery tickets")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, base / "accuracy_vs_density.png", dpi=100)
