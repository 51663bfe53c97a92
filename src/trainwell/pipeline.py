"""The one place that wires the parts: config -> data -> preprocess -> model -> init -> trainer -> run dir.

The CLI and the lab call :func:`fit`; nothing else wires.

Example:
    >>> from trainwell.config import load_config
    >>> cfg = load_config(None, ["data.name=xor", "model.kind=mlp", "model.hidden=[8]", "train.epochs=2"])
    >>> result = fit(cfg, out="/tmp/trainwell-doctest", force=True, quiet=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import trainwell
from trainwell import init as initializers
from trainwell import optim, prune
from trainwell.config import Config, config_from_dict, read_toml, to_toml
from trainwell.data import load
from trainwell.data.augment import build as build_augment
from trainwell.data.preprocess import build as build_preprocessor
from trainwell.data.splits import Splits
from trainwell.doctor import diagnosis
from trainwell.doctor.check import check as doctor_check
from trainwell.doctor.monitors import Monitor
from trainwell.doctor.verdict import Verdict
from trainwell.errors import ConfigError, DataError, TrainwellError
from trainwell.nn.l0 import l0_sparsity
from trainwell.nn.models import build_model
from trainwell.nn.norm import count_trainable, train_only_norm
from trainwell.nn.sdr import sdr_layers
from trainwell.nn.variance_shift import variance_shift
from trainwell.regularize import Penalty, count_nonzero
from trainwell.rundir import (
    RunDir,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    new_run_path,
)
from trainwell.train import progress as progress_mod
from trainwell.train import stop_callback
from trainwell.train.callbacks import Checkpoint, MetricsLogger, StepLosses
from trainwell.train.regularizers import MaxNorm, SDRUpdate
from trainwell.train.trainer import Trainer, default_device, evaluate, loss_function
from trainwell.viz import plots


@dataclass
class Prepared:
    """Everything built from a config before training."""

    cfg: Config
    splits: Splits
    model: torch.nn.Module
    preprocessor: object | None
    device: torch.device


@dataclass
class FitResult:
    summary: dict
    run_dir: Path
    model: torch.nn.Module


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return default_device()
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' is not allowed here: no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def load_data(cfg: Config) -> tuple[Splits, object | None]:
    """Load the dataset and fit the preprocessor on the training split only, then apply it to all splits."""
    d = cfg.data
    splits = load(d.name, seed=d.seed, val_fraction=d.val_fraction, root=d.root or None,
                  label_noise=d.label_noise, random_labels=d.random_labels, random_pixels=d.random_pixels,
                  corrupt_seed=d.corrupt_seed, **d.options)
    p = cfg.preprocess
    pre = build_preprocessor(p.kind, n_components=p.n_components, whiten=p.whiten, eps=p.eps)
    if pre is not None:
        if not splits.train[0].is_floating_point():
            raise ConfigError(f"preprocess.kind = {p.kind!r} needs real-valued inputs; dataset {d.name!r} has tokens")
        try:
            pre.fit(splits.train[0])
        except ValueError as exc:
            raise ConfigError(f"preprocess: {exc}") from None
        splits.train, splits.val, splits.test = (
            (pre.transform(x) if len(x) else x, y) for x, y in (splits.train, splits.val, splits.test)
        )
        splits.meta.input_shape = tuple(splits.train[0].shape[1:])
    return splits, pre


def prepare(cfg: Config) -> Prepared:
    """Seed everything, load data, build and initialize the model (no training)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    splits, pre = load_data(cfg)
    if not splits.train[0].is_floating_point():
        raise ConfigError(
            f"dataset {cfg.data.name!r} gives integer tokens, which model.kind = {cfg.model.kind!r} cannot take: "
            f"use data.options.encoding = 'onehot'"
        )
    model = build_model(cfg.model, splits.meta.input_shape, splits.meta.num_classes)
    i = cfg.init
    initializers.apply(model, i.scheme, bias=i.bias, mode=i.mode, std=i.std, output_layer=i.output_layer,
                       generator=torch.Generator().manual_seed(cfg.train.seed))
    if cfg.train.trainable == "norm":
        train_only_norm(model)
    return Prepared(cfg=cfg, splits=splits, model=model, preprocessor=pre, device=device)


def preflight(prep: Prepared, examples: int | None = None) -> list[Verdict]:
    """Run every pre-flight check (:func:`trainwell.doctor.check`) on the prepared model and a slice of its
    training data, with every configured penalty (L1, L2, activity, L0 and the optimizer's weight decay); the
    model, its gradients and the RNG state are left untouched."""
    cfg, r = prep.cfg, prep.cfg.regularize
    n = examples or cfg.doctor.preflight_examples
    x, y = (t[:n].to(prep.device) for t in prep.splits.train)
    penalty = Penalty(prep.model, l1=r.l1, l2=r.l2, activity=r.activity, l0=r.l0)
    try:
        report = doctor_check(prep.model, x, y, loss_function(cfg.train.loss),
                              penalty=penalty if penalty.active else None,
                              optimizer=optim.from_config(prep.model, cfg.optim),
                              num_classes=prep.splits.meta.num_classes)
    finally:
        if penalty.activity is not None:  # its hooks must not stay on the model that will train
            penalty.activity.remove()
    return report.verdicts


def postflight(prep: Prepared, trainer: Trainer, state, final: dict, overfit_epoch: int | None) -> list[Verdict]:
    """Diagnosis after training: the loss curve's learning rate, bias/variance, overfitting."""
    losses = next((cb.losses for cb in trainer.callbacks if isinstance(cb, StepLosses)), [])
    verdicts = [diagnosis.learning_rate_diagnosis(losses, prep.cfg.train.batch_size)]
    human = prep.cfg.doctor.human_error
    human = human if human is not None else prep.splits.meta.human_error
    if final.get("train_acc") is not None and final.get("val_acc") is not None:
        verdicts.append(diagnosis.bias_variance(1 - final["train_acc"], 1 - final["val_acc"], human))
    verdicts.append(diagnosis.overfitting(state.history, overfit_epoch))
    return verdicts


def _trainer(prep: Prepared, run: RunDir, quiet: bool, progress, extra_callbacks=()) -> Trainer:
    cfg = prep.cfg
    opt = optim.from_config(prep.model, cfg.optim)
    steps_per_epoch = -(-len(prep.splits.train[0]) // cfg.train.batch_size)
    o = cfg.optim
    schedule = optim.build_schedule(opt, o.schedule, epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch,
                                    step_size=o.step_size, gamma=o.gamma, patience=o.patience, factor=o.factor,
                                    min_lr=o.min_lr, warmup_fraction=o.warmup_fraction)
    monitors = [Monitor(every=cfg.doctor.monitor_every, path=run.path / "monitors.jsonl")] \
        if cfg.doctor.monitor_every else []
    r = cfg.regularize
    constraints = [MaxNorm(r.max_norm)] if r.max_norm > 0 else []
    if sdr_layers(prep.model):
        constraints.append(SDRUpdate(r.sdr_beta, r.sdr_zeta, r.sdr_anneal))
    try:
        penalty = Penalty(prep.model, l1=r.l1, l2=r.l2, activity=r.activity, l0=r.l0)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    a = cfg.augment
    augment = build_augment(a.kind, shift=a.shift, scale=a.scale, noise=a.noise, crop_padding=a.crop_padding,
                            flip=a.flip, input_noise=a.input_noise)
    if a.kind == "signal" and len(prep.splits.meta.input_shape) != 2:
        raise ConfigError(f"augment.kind = 'signal' needs (C, L) inputs, got {prep.splits.meta.input_shape}")
    if a.kind == "image" and len(prep.splits.meta.input_shape) != 3:
        raise ConfigError(f"augment.kind = 'image' needs (C, H, W) inputs, got {prep.splits.meta.input_shape}")
    callbacks = [
        stop_callback.from_config(cfg.stop),  # first: it adds criterion values to the metrics that get logged
        *constraints,  # right after the optimizer step, before anything looks at the weights
        StepLosses(),
        *monitors,
        MetricsLogger(run.metrics),
        Checkpoint(run, every=cfg.train.checkpoint_every, minutes=cfg.train.checkpoint_minutes,
                   monitor=cfg.train.monitor,
                   extra={"config": cfg.to_dict(), "trainwell_version": trainwell.__version__}),
        *extra_callbacks,
    ]
    return Trainer(prep.model, opt, cfg.train.loss, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                   schedule=schedule, callbacks=callbacks, device=prep.device, seed=cfg.train.seed,
                   progress=progress if progress is not None else progress_mod.auto(quiet),
                   penalty=penalty if penalty.active else None, augment=augment)


def _run_path(cfg: Config, out: str | Path | None, force: bool) -> Path:
    if out is None:
        return new_run_path("runs", cfg.name, cfg.hash())
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not force:
            raise TrainwellError(f"--out {str(path)!r} already exists and is not empty: choose another folder or "
                                 f"pass --force to replace it")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return path


def config_of_run(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a run directory's resolved config (``--set`` overrides may extend it, e.g. train.epochs)."""
    from trainwell.config import apply_overrides

    run = RunDir(run_dir)
    if not run.config.exists():
        raise TrainwellError(f"{run.config}: not found; --resume needs a trainwell run directory")
    return config_from_dict(apply_overrides(read_toml(run.config), list(overrides or [])))


def fit(cfg: Config, *, out: str | Path | None = None, resume: str | Path | None = None, force: bool = False,
        quiet: bool = False, progress=None, callbacks=(), init_state: dict | None = None,
        masks: dict | None = None, init_seed: int | None = None) -> FitResult:
    """Train the run ``cfg`` describes, write its run directory, and return its summary.

    With ``resume``, continue the run in that directory from ``checkpoints/last.pt`` (the config is the run's
    own; ``cfg`` should come from :func:`config_of_run`). ``callbacks`` are added after the run's own
    (metrics logger, checkpoint). For lottery-ticket rounds: ``init_seed`` re-initializes the model with another
    seed, ``init_state`` loads starting weights (theta_0 or a rewound theta_k), and ``masks`` prunes the model
    (:mod:`trainwell.prune`) before training; the masks and their sparsity report are saved in the run dir.
    """
    tic = time.perf_counter()
    if resume is not None:
        run = RunDir(resume)
        ckpt = load_checkpoint(run.last)
    else:
        run = RunDir(_run_path(cfg, out, force))
        ckpt = None
    prep = prepare(cfg)
    if init_seed is not None:
        i = cfg.init
        initializers.apply(prep.model, i.scheme if i.scheme != "default" else "standard", bias=i.bias, mode=i.mode,
                           std=i.std, output_layer=i.output_layer, generator=torch.Generator().manual_seed(init_seed))
    if init_state is not None:
        prep.model.load_state_dict(init_state)
    if masks is not None:
        prune.apply_masks(prep.model, masks)
    if cfg.train.compile:
        prep.model.compile()  # in place: state_dict keys stay the same (torch.compile, inductor backend)
    trainer = _trainer(prep, run, quiet, progress, callbacks)
    if ckpt is not None:
        try:
            trainer.load_checkpoint_state(ckpt)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise TrainwellError(f"{run.last}: does not match this run's model/optimizer ({first})") from None
        run.remove_stale_temp_files()
        run.truncate_metrics(ckpt["epoch"])
        atomic_write_text(run.config, to_toml(cfg))
    else:
        run.create()
        atomic_write_text(run.config, to_toml(cfg))
        run.metrics.write_text("", encoding="utf-8")
        (run.path / "monitors.jsonl").write_text("", encoding="utf-8")
        pre = preflight(prep) if cfg.doctor.preflight else []
        atomic_write_json(run.path / "preflight.json", [v.as_dict() for v in pre])
        if masks is not None:
            atomic_torch_save(run.path / "masks.pt", {k: v.cpu() for k, v in masks.items()})
            atomic_write_json(run.path / "sparsity.json", prune.sparsity_report(masks))
    fit_tic = time.perf_counter()
    state = trainer.fit(prep.splits.train, prep.splits.val)
    fit_s = time.perf_counter() - fit_tic
    summary = _summary(prep, trainer, state, wall=time.perf_counter() - tic)
    summary["fit_s"] = round(fit_s, 4)
    summary["doctor"] = _doctor_report(run, prep, trainer, state, summary)
    atomic_write_json(run.summary, summary)
    plots.first_layer_weights(prep.model, prep.splits.meta.input_shape, run.figures / "first_layer_weights.png")
    if cfg.report.enabled:
        from trainwell.viz.report import build_report

        build_report(run.path)
    return FitResult(summary=summary, run_dir=run.path, model=prep.model)


def _doctor_report(run: RunDir, prep: Prepared, trainer: Trainer, state, summary: dict) -> list[dict]:
    """Pre-flight (saved at the start), monitor and post-flight verdicts, each tagged with its phase."""
    pre = json.loads((run.path / "preflight.json").read_text()) if (run.path / "preflight.json").exists() else []
    monitor = next((cb for cb in trainer.callbacks if isinstance(cb, Monitor)), None)
    during = monitor.verdicts() if monitor is not None else []
    post = postflight(prep, trainer, state, summary["final"], summary["stop"]["overfit_epoch"])
    return ([{**v, "phase": "pre"} for v in pre] + [{**v.as_dict(), "phase": "monitor"} for v in during]
            + [{**v.as_dict(), "phase": "post"} for v in post])


def _summary(prep: Prepared, trainer: Trainer, state, wall: float) -> dict:
    cfg, splits = prep.cfg, prep.splits
    loss_fn = loss_function(cfg.train.loss)
    final = {}
    for split, (x, y) in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(x):
            m = evaluate(prep.model, x.to(prep.device), y.to(prep.device), loss_fn)
            final[f"{split}_loss"], final[f"{split}_acc"] = m["loss"], m["acc"]
        else:
            final[f"{split}_loss"] = final[f"{split}_acc"] = None
    shift_data = splits.val[0] if len(splits.val[0]) else splits.train[0]
    shift = variance_shift(prep.model, shift_data.to(prep.device))  # [] when the model has no BatchNorm
    checkpoint = next(cb for cb in trainer.callbacks if isinstance(cb, Checkpoint))
    stopper = next(cb for cb in trainer.callbacks if isinstance(cb, stop_callback.Stopper))
    history = state.history
    completed = len(history)
    return {
        "name": cfg.name,
        "config_hash": cfg.hash(),
        "dataset": cfg.data.name,
        "model": cfg.model.kind,
        "params": sum(p.numel() for p in prep.model.parameters()),
        "trainable_params": count_trainable(prep.model),
        "epochs": completed,
        "steps": state.step,
        "stop_reason": state.stop or f"completed {cfg.train.epochs} epochs",
        "failed": stopper.failure is not None or bool(history and not math.isfinite(history[-1]["train_loss"])),
        "best_epoch": checkpoint.best_epoch,
        "monitor": cfg.train.monitor,
        "stop": {"criteria": list(cfg.stop.criteria), "overfit_epoch": stopper.overfit_epoch,
                 "restored_best_epoch": stopper.restored_epoch},
        "final": final,
        "doctor": [],
        "variance_shift": shift,
        "regularize": {**count_nonzero(prep.model), "l0_sparsity": l0_sparsity(prep.model)},
        "wall_s": round(wall, 3),
        "train_time_s": round(sum(r.get("time", 0.0) for r in history), 3),
        "trainwell_version": trainwell.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(prep.device),
        "seed": cfg.train.seed,
        "sizes": splits.sizes(),
        "human_error": splits.meta.human_error,
    }


__all__ = ["DataError", "FitResult", "Prepared", "config_of_run", "fit", "load_data", "postflight", "preflight",
           "prepare"]
