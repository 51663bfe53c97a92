"""What every lab experiment shares: training through the pipeline, small callbacks that watch a run, verdicts.

An experiment is one module with ``NAME``, ``CLAIM``, ``PAPER``, a ``Config`` dataclass (its defaults are the
default size; ``Config.quick()`` the quick size), ``run(cfg, workdir=None) -> dict`` (plain data only),
``plot(result) -> {name: matplotlib.figure.Figure}`` and ``verdict(result) -> dict``. Every model is trained by
:func:`trainwell.pipeline.fit` or :func:`trainwell.sweep.sweep`; nothing here is a training loop.

Example:
    >>> v = make_verdict("x rises", 0.9 > 0.5, {"x": 0.9}, "x > 0.5")
    >>> v["status"]
    'pass'
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from trainwell.config import load_config
from trainwell.pipeline import fit
from trainwell.rundir import read_jsonl
from trainwell.train.callbacks import Callback, State

STATUSES = ("pass", "fail", "inconclusive")

# set by the runner while an experiment runs: called with one line per finished training (per-member progress)
_member_log = None


@contextlib.contextmanager
def member_log(log):
    """Within the block, report every training that :func:`train` finishes to ``log(line)``."""
    global _member_log
    old, _member_log = _member_log, log
    try:
        yield
    finally:
        _member_log = old

# What a lab run does not need: pre-flight checks, monitors, HTML reports and periodic checkpoints cost more
# than the small trainings themselves. The lab's experiments keep the metrics and the final summary.
LAB_SETTINGS = [
    "doctor.preflight=false",
    "doctor.monitor_every=0",
    "report.enabled=false",
    "train.checkpoint_every=1000000",
    "train.checkpoint_minutes=1000000.0",
    "optim.schedule=none",
]


def make_verdict(claim: str, ok: bool | None, evidence: dict, threshold: str) -> dict:
    """Return ``{claim, status, evidence, threshold}``; ``ok=None`` means the test could not be decided."""
    status = "inconclusive" if ok is None else ("pass" if ok else "fail")
    return {"claim": claim, "status": status, "evidence": evidence, "threshold": threshold}


def combine(statuses: list[str]) -> str:
    """Overall status of one experiment over seeds: the common status, or ``unstable`` when seeds disagree.

    Any error makes the whole experiment ``error``; a verdict that flips between seeds is never ``pass``.

    >>> combine(["pass", "pass"]), combine(["pass", "fail"]), combine(["pass", "error"])
    ('pass', 'unstable', 'error')
    """
    if not statuses:
        raise ValueError("no statuses to combine")
    if "error" in statuses:
        return "error"
    return statuses[0] if len(set(statuses)) == 1 else "unstable"


@dataclass
class Trained:
    """One training run of an experiment: its summary.json, per-epoch history and the trained model."""

    summary: dict
    history: list[dict]
    model: torch.nn.Module
    run_dir: Path

    @property
    def final(self) -> dict:
        return self.summary["final"]


def train(overrides: list[str], workdir: str | Path | None, name: str, callbacks=(), **fit_kwargs) -> Trained:
    """Train the config ``LAB_SETTINGS + overrides`` with :func:`trainwell.pipeline.fit` into ``workdir/name``."""
    cfg = load_config(None, [*LAB_SETTINGS, f"name=\"lab-{name}\"", *overrides])
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="trainwell-lab-") as tmp:
            res = fit(cfg, out=Path(tmp) / name, force=True, quiet=True, callbacks=list(callbacks), **fit_kwargs)
            trained = Trained(res.summary, read_jsonl(res.run_dir / "metrics.jsonl"), res.model, res.run_dir)
    else:
        res = fit(cfg, out=Path(workdir) / name, force=True, quiet=True, callbacks=list(callbacks), **fit_kwargs)
        trained = Trained(res.summary, read_jsonl(res.run_dir / "metrics.jsonl"), res.model, res.run_dir)
    if _member_log is not None:
        f = trained.final
        acc = ", ".join(f"{k} {pct(f.get(k + '_acc'))}" for k in ("train", "test") if f.get(k + "_acc") is not None)
        _member_log(f"    {name}: {trained.summary['epochs']} epochs, {acc} ({trained.summary['wall_s']:.1f} s)")
    return trained


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``model`` (in eval mode, restored afterwards) classifies as ``y``."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    acc = float((model(x.to(dev)).argmax(dim=1).cpu() == y).float().mean())
    model.train(was)
    return acc


class Reached(Callback):
    """Record the first epoch and step at which ``metric`` reaches ``target``; optionally stop training there.

    The epoch's training accuracy is measured on the forward passes of that epoch, as the trainer logs it.
    """

    def __init__(self, metric: str = "train_acc", target: float = 0.99, stop: bool = True, mode: str = "max"):
        self.metric, self.target, self.stop, self.mode = metric, target, stop, mode
        self.epoch: int | None = None
        self.step: int | None = None

    def on_fit_start(self, state: State) -> None:
        self.epoch = self.step = None

    def on_epoch_end(self, state: State) -> None:
        value = state.metrics.get(self.metric)
        if value is None or self.epoch is not None:
            return
        if (value >= self.target) if self.mode == "max" else (value <= self.target):
            self.epoch, self.step = state.epoch, state.step
            if self.stop:
                state.stop = f"{self.metric} reached {self.target}"


class Evaluate(Callback):
    """Every ``every`` epochs, record the accuracy of the model on extra splits (e.g. the test set).

    ``splits`` maps a name to ``(x, y)``; ``records`` gets one dict per evaluation: epoch, step and
    ``<name>_acc`` for every split, plus the epoch's own training metrics. ``stop_at=(name, value)`` stops the
    run once that split's accuracy reaches ``value``.
    """

    def __init__(self, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], every: int = 1,
                 stop_at: tuple[str, float] | None = None):
        self.splits, self.every, self.stop_at = splits, max(1, every), stop_at
        self.records: list[dict] = []

    def on_fit_start(self, state: State) -> None:
        self.records = []

    def on_epoch_end(self, state: State) -> None:
        if state.epoch % self.every and state.stop is None:
            return
        rec = {"epoch": state.epoch, "step": state.step, "train_acc": state.metrics.get("train_acc"),
               "train_loss": state.metrics.get("train_loss")}
        for name, (x, y) in self.splits.items():
            rec[f"{name}_acc"] = accuracy(state.model, x, y)
        self.records.append(rec)
        if self.stop_at is not None and rec[f"{self.stop_at[0]}_acc"] >= self.stop_at[1]:
            state.stop = f"{self.stop_at[0]} accuracy reached {self.stop_at[1]}"


def first_at(records: list[dict], key: str, target: float) -> int | None:
    """The ``step`` of the first record whose ``key`` is >= ``target`` (None if never)."""
    return next((r["step"] for r in records if r.get(key) is not None and r[key] >= target), None)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weight matrices/filters of ``model`` (no biases, no normalization parameters)."""
    return [p.detach().cpu() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]


def new_figure(width: float = 6.0, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    """A matplotlib Figure and its axes, made without pyplot (the user's backend is never touched)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"
