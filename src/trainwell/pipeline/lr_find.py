"""``trainwell lr-find`` and ``optim.lr = "find"``: the LR range test (:mod:`trainwell.train.lr_range`) on the
model and data a config describes, checked by the doctor's loss-curve reading.

The rate is read off the curve by a rule that depends on the schedule it will train under (a third of the rate at
the smoothed loss's minimum for one-cycle and cosine, a tenth for a constant rate), chosen by measuring the test
accuracy each rule's suggestion reaches against a 5-rate grid on four configs (benchmarks/lr_rule.py,
benchmarks/RESULTS.md section 23). After the range test suggests a rate, a short run at that constant rate from
the same initial weights is read by :func:`trainwell.doctor.diagnosis.learning_rate_diagnosis` (the post-flight
reading of a loss curve): if it says "too high" (the loss rose, spiked or oscillated), the suggestion is divided
by 3 and read again, at most twice. The model, optimizer and RNG state are left as they were.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from trainwell.config import Config
from trainwell.doctor import diagnosis
from trainwell.doctor.verdict import Verdict
from trainwell.errors import ParameterError
from trainwell.train.lr_range import RULES, LRRange, lr_range_test, rule_for

CHECK_STEPS = 60


@dataclass
class LRFind:
    range: LRRange
    suggestion: float
    check: Verdict  # the doctor's reading of a short run at the suggestion

    def as_dict(self) -> dict:
        return {"suggestion": self.suggestion, "range_test": {k: v for k, v in self.range.as_dict().items()
                                                             if k not in ("lrs", "losses", "smoothed")},
                "check": self.check.as_dict()}


def _short_run(model, optimizer, x, y, loss_fn, lr: float, steps: int, batch_size: int, seed: int) -> list[float]:
    state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    generator = torch.Generator().manual_seed(seed)
    for group in optimizer.param_groups:
        group["lr"] = lr
    losses = []
    model.train()
    try:
        for _ in range(steps):
            idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=generator)
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if not torch.isfinite(loss):
                break
    finally:
        model.load_state_dict(state)
        optimizer.load_state_dict(opt_state)
    return losses


def find_lr(cfg: Config, steps: int = 100, start: float = 1e-7, end: float = 10.0, rule: str = "auto",
            quiet: bool = True) -> LRFind:
    """Run the range test for ``cfg`` (its model, initialization, optimizer and training data), read the curve by
    ``rule`` and check the suggestion with a short run read by the doctor.

    ``rule = "auto"`` (the default) reads the config's schedule: a third of the rate at the smoothed minimum under
    one-cycle or cosine, a tenth of it otherwise (:func:`~trainwell.train.lr_range.rule_for`; measured in
    benchmarks/RESULTS.md section 23); any of :data:`~trainwell.train.lr_range.RULES` may be named instead.
    Unless ``quiet``, a line on stderr says what runs (the data and model, the range test, each short run)."""
    if rule == "auto":
        rule = rule_for(cfg.optim.schedule)
    elif rule not in RULES:
        raise ParameterError("rule", rule, f"is not allowed: use auto or one of {', '.join(RULES)}")
    from trainwell import optim
    from trainwell.pipeline.build import prepare
    from trainwell.train.progress import note
    from trainwell.train.trainer import loss_function

    probe = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=1e-3))  # any valid rate: it is swept
    with torch.random.fork_rng(devices=[]):
        note("lr-find: loading the data and building the model...", quiet)
        prep = prepare(probe)
        model = prep.model.to(prep.device)
        opt = optim.from_config(model, probe.optim)
        x, y = (t.to(prep.device) for t in prep.splits.train)
        loss_fn = loss_function(cfg.train.loss)
        bs = cfg.train.batch_size
        note(f"lr-find: the range test, up to {steps} steps while the rate grows from {start:g} to {end:g}...", quiet)
        curve = lr_range_test(model, opt, x, y, loss_fn, start=start, end=end, steps=steps, batch_size=bs,
                              seed=cfg.train.seed, rule=rule)
        lr = curve.suggestion
        note(f"lr-find: checking {lr:.3g} with a {CHECK_STEPS}-step run read by the doctor...", quiet)
        check = diagnosis.learning_rate_diagnosis(
            _short_run(model, opt, x, y, loss_fn, lr, CHECK_STEPS, bs, cfg.train.seed), bs)
        for _ in range(2):
            if not str(check.value).startswith("too high"):
                break
            curve.notes.append(f"the doctor read a short run at {lr:.3g} as {check.value.split(';')[0]}: "
                               f"divided by 3")
            lr /= 3
            note(f"lr-find: too high; checking {lr:.3g} with a {CHECK_STEPS}-step run...", quiet)
            check = diagnosis.learning_rate_diagnosis(
                _short_run(model, opt, x, y, loss_fn, lr, CHECK_STEPS, bs, cfg.train.seed), bs)
    return LRFind(range=curve, suggestion=float(f"{lr:.3g}"), check=check)


def resolve(cfg: Config, quiet: bool = True) -> tuple[Config, dict]:
    """``optim.lr = "find"`` -> the config with the found rate, and what the test found (for summary.json)."""
    from trainwell.train.progress import note

    note("optim.lr = 'find': running the LR range test...", quiet)
    found = find_lr(cfg)
    note(f"optim.lr = 'find': using {found.suggestion:g} ({found.check.value.split(';')[0]})", quiet)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=found.suggestion)), found.as_dict()


def resolve_lr(cfg: Config, quiet: bool = True) -> tuple[Config, dict | None]:
    """``optim.lr = "find"``: the config with the rate the LR range test picks for it
    (:func:`resolve`) and what the test found (for summary.json); any other config as it
    is, with None. A fit and each population member resolve their rate here, before anything is written."""
    if cfg.optim.lr != "find":
        return cfg, None
    return resolve(cfg, quiet)


def plot(found: LRFind, path: str | Path) -> Path:
    """The range test's loss against the learning rate (log), the suggestion and the steepest point marked."""
    from trainwell.viz.plots import new_figure, save

    r = found.range
    fig, ax = new_figure(figsize=(6.5, 4))
    ax.plot(r.lrs, r.losses, color="0.75", lw=0.8, label="loss per step")
    ax.plot(r.lrs, r.smoothed, color="C0", label="smoothed loss")
    ax.axvline(found.suggestion, color="C2", ls="--", label=f"suggested lr {found.suggestion:.3g} ({r.rule})")
    ax.axvline(r.steepest, color="C1", ls=":", label=f"steepest descent {r.steepest:.3g}")
    ax.axvline(r.min_lr, color="C3", ls=":", label=f"minimum {r.min_lr:.3g}")
    ax.set_xscale("log")
    low, high = min(r.smoothed), max(r.smoothed[: max(2, len(r.smoothed) // 10)])
    ax.set_ylim(low - 0.1 * (high - low), high + 0.6 * (high - low))
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss", title="Learning-rate range test (Smith 2017)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path, dpi=100)
