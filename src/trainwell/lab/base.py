"""What every lab experiment shares: training through the pipeline, small callbacks that watch a run, verdicts.

An experiment is one module with ``NAME``, ``CLAIM``, ``PAPER``, a ``Config`` dataclass (its defaults are the
default size; ``Config.quick()`` the quick size), ``run(cfg, workdir=None) -> dict`` (plain data only),
``plot(result) -> {name: matplotlib.figure.Figure}`` and ``verdict(result) -> dict``. Every model is trained by
:func:`trainwell.pipeline.fit` or :func:`trainwell.sweep.sweep`, or as populations by
:func:`trainwell.lab.populations.train_many`; nothing here is a training loop.

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
from statistics import NormalDist

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


# -- verdicts from an effect with its interval ----------------------------------------------------------------
CONFIDENCE = 0.95


def _z(conf: float) -> float:
    return NormalDist().inv_cdf(0.5 + conf / 2)


def _t(conf: float, df: int) -> float:
    """The two-sided ``conf`` quantile of Student's t with ``df`` degrees of freedom (scipy comes with
    scikit-learn, a dependency)."""
    if df <= 0:
        return math.inf
    from scipy.stats import t

    return float(t.ppf(0.5 + conf / 2, df))


def wilson(k: int, n: int, conf: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k/n`` (Wilson 1927; ``scipy.stats.binomtest(k, n)
    .proportion_ci(method="wilson")``).

    >>> [round(x, 4) for x in wilson(81, 263)]
    [0.2553, 0.3662]
    """
    if n <= 0:
        return 0.0, 1.0
    z, p = _z(conf), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def diff_proportions(k1: int, n1: int, k2: int, n2: int, conf: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(p1 - p2, lo, hi)`` for two independent proportions: Newcombe's hybrid score interval (Newcombe 1998,
    "Interval estimation for the difference between independent proportions", method 10), built from the two
    Wilson intervals.

    >>> [round(x, 4) for x in diff_proportions(56, 70, 48, 80)]
    [0.2, 0.0524, 0.3339]
    """
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, conf)
    l2, u2 = wilson(k2, n2, conf)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def mean_interval(values, conf: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: Student's t interval of the mean of ``values`` (``scipy.stats.ttest_1samp(values, 0)
    .confidence_interval(conf)``). For paired arms pass the per-pair differences (per seed, or per test example:
    1 where only the first arm is right, -1 where only the second is, 0 otherwise). Fewer than two values, or
    values that all agree, give an interval of zero width at their mean only when there is more than one value."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return math.nan, -math.inf, math.inf
    m = sum(xs) / n
    if n == 1:
        return m, -math.inf, math.inf
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = _t(conf, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half


def diff_means(a, b, conf: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), lo, hi)`` for two independent samples: Welch's t interval
    (``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(conf)``). Two samples without any spread
    give an interval of zero width at the difference; a sample of one value decides nothing."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if len(a) < 2 or len(b) < 2:
        return (sum(a) / len(a) - sum(b) / len(b)) if a and b else math.nan, -math.inf, math.inf
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    d = ma - mb
    if va + vb == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = _t(conf, df) * math.sqrt(va + vb)
    return d, d - half, d + half


def paired_correct(a, b) -> list[int]:
    """Per-example paired differences of two models' correctness on the same examples (1, 0 or -1)."""
    a, b = [bool(x) for x in a], [bool(x) for x in b]
    if len(a) != len(b):
        raise ValueError(f"paired arms need the same examples: {len(a)} vs {len(b)}")
    return [int(x) - int(y) for x, y in zip(a, b, strict=True)]


def bootstrap_interval(values, stat=None, draws: int = 2000, seed: int = 0,
                       conf: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(stat(values), lo, hi)``: the percentile bootstrap interval of ``stat`` (default the mean) over
    ``draws`` resamples of ``values`` with replacement (Efron 1979; ``scipy.stats.bootstrap(method="percentile")``).
    ``values`` may be rows (e.g. one tuple per seed) when ``stat`` reads rows."""
    vals = list(values)
    stat = stat or (lambda xs: sum(xs) / len(xs))
    if len(vals) < 2:
        return (stat(vals) if vals else math.nan), -math.inf, math.inf
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(vals), (draws, len(vals)), generator=g).tolist()
    stats = sorted(stat([vals[i] for i in row]) for row in idx)
    a = (1 - conf) / 2
    lo = stats[max(0, math.floor(a * draws))]
    hi = stats[min(draws - 1, math.ceil((1 - a) * draws) - 1)]
    return stat(vals), lo, hi


def criterion(name: str, effect: float, lo: float, hi: float, threshold: float = 0.0, *,
              method: str, n: int | None = None, unit: str = "") -> dict:
    """One criterion of a verdict: the claim is ``effect > threshold``. Pass when the whole interval ``[lo, hi]``
    lies above ``threshold``, fail when none of it does (``hi <= threshold``: two arms that agree on every paired
    example, an interval [0, 0], refute a claim that one is better), inconclusive when it straddles it.

    >>> criterion("gain", 0.05, 0.01, 0.09, method="t")["status"]
    'pass'
    >>> criterion("gain", 0.0, -0.02, 0.02, method="t")["status"]
    'inconclusive'
    >>> criterion("gain", 0.0, 0.0, 0.0, method="t")["status"]
    'fail'
    """
    bad = not all(isinstance(v, (int, float)) and not math.isnan(v) for v in (effect, lo, hi))
    if bad:
        status = "inconclusive"
    elif lo > threshold:
        status = "pass"
    elif hi <= threshold:
        status = "fail"
    else:
        status = "inconclusive"
    def r(v):  # JSON has no infinity: an unbounded side is None
        if isinstance(v, float) and math.isinf(v):
            return None
        return v if not isinstance(v, float) or not math.isfinite(v) else round(v, 5)

    return {"name": name, "effect": r(effect), "lo": r(lo), "hi": r(hi), "threshold": threshold, "status": status,
            "method": method, "n": n, "unit": unit}


def check(name: str, ok: bool, value=None, expected: str = "") -> dict:
    """A criterion that is a fact, not an estimate (e.g. a configuration's density, a deterministic identity):
    pass or fail with no interval."""
    return {"name": name, "effect": value, "lo": None, "hi": None, "threshold": expected,
            "status": "pass" if ok else "fail", "method": "exact", "n": None, "unit": ""}


def decide(claim: str, criteria: list[dict], evidence: dict, threshold: str) -> dict:
    """The verdict of a claim that holds when every criterion holds: fail when any criterion is a decided fail,
    pass when all pass, inconclusive otherwise. ``evidence["criteria"]`` lists them with their intervals."""
    statuses = [c["status"] for c in criteria]
    status = "fail" if "fail" in statuses else ("pass" if statuses and all(s == "pass" for s in statuses)
                                                 else "inconclusive")
    v = make_verdict(claim, None, {**evidence, "criteria": criteria}, threshold)
    v["status"] = status
    v["decided"] = True  # from intervals: a fail here is a decided fail at any size
    return v


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
    cfg: object = None  # the resolved Config it was trained with
    step_losses: list[float] | None = None  # the training loss of every step, where asked for

    @property
    def final(self) -> dict:
        return self.summary["final"]


def train(overrides: list[str], workdir: str | Path | None, name: str, callbacks=(), **fit_kwargs) -> Trained:
    """Train the config ``LAB_SETTINGS + overrides`` with :func:`trainwell.pipeline.fit` into ``workdir/name``."""
    cfg = load_config(None, [*LAB_SETTINGS, f"name=\"lab-{name}\"", *overrides])
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="trainwell-lab-") as tmp:
            res = fit(cfg, out=Path(tmp) / name, force=True, quiet=True, callbacks=list(callbacks), **fit_kwargs)
            trained = Trained(res.summary, read_jsonl(res.run_dir / "metrics.jsonl"), res.model, res.run_dir, cfg)
    else:
        res = fit(cfg, out=Path(workdir) / name, force=True, quiet=True, callbacks=list(callbacks), **fit_kwargs)
        trained = Trained(res.summary, read_jsonl(res.run_dir / "metrics.jsonl"), res.model, res.run_dir, cfg)
    if _member_log is not None:
        f = trained.final
        acc = ", ".join(f"{k} {pct(f.get(k + '_acc'))}" for k in ("train", "test") if f.get(k + "_acc") is not None)
        _member_log(f"    {name}: {trained.summary['epochs']} epochs, {acc} ({trained.summary['wall_s']:.1f} s)")
    return trained


@torch.no_grad()
def _per_example(trained: Trained, split: str, score) -> torch.Tensor:
    """``score(outputs, targets)`` per example of ``split`` (as the pipeline prepared it for this run: same seed,
    validation split and preprocessing), the trained model in eval mode, in chunks of 1024."""
    from trainwell.pipeline import load_data

    splits, _ = load_data(trained.cfg)
    x, y = getattr(splits, split)
    model = trained.model
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        return torch.cat([score(model(x[i:i + 1024].to(dev)), y[i:i + 1024].to(dev)).cpu()
                          for i in range(0, len(x), 1024)])
    finally:
        model.train(was)


def correct(trained: Trained, split: str = "test") -> list[int]:
    """Per example of ``split`` (train, val or test), 1 if the trained model (eval mode) classifies it right, else
    0. Two runs on the same data give paired arms (:func:`paired_correct`)."""
    return _per_example(trained, split, lambda out, y: out.argmax(dim=1) == y).int().tolist()


def example_losses(trained: Trained, split: str = "train") -> list[float]:
    """Per example of ``split`` (like :func:`correct`), the trained model's cross-entropy in eval mode: two runs
    on the same data give paired losses. A non-finite loss (a diverged net) is recorded as 1e9."""
    out = _per_example(trained, split,
                       lambda out, y: torch.nn.functional.cross_entropy(out, y, reduction="none"))
    return [round(v, 5) if math.isfinite(v) else 1e9 for v in out.tolist()]


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
