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
from trainwell.data.splits import Splits
from trainwell.doctor import diagnosis
from trainwell.doctor import preflight as preflight_checks
from trainwell.doctor.monitors import Monitor
from trainwell.doctor.verdict import Verdict
from trainwell.errors import ConfigError, DataError, TrainwellError
from trainwell.nn.l0 import l0_sparsity
from trainwell.nn.models import build_model
from trainwell.nn.norm import count_trainable, train_only_norm
from trainwell.nn.sdr import sdr_layers
from trainwell.nn.size import check_model_fits
from trainwell.nn.variance_shift import variance_shift
from trainwell.regularize import Penalty, count_nonzero
from trainwell.runclaim import Claim
from trainwell.rundir import (
    RunDir,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    check_training_checkpoint,
    load_checkpoint,
)
from trainwell.train import interrupt, loggers, stop_callback
from trainwell.train import progress as progress_mod
from trainwell.train.callbacks import Checkpoint, MetricsLogger, StepLosses
from trainwell.train.interrupt import Interrupt
from trainwell.train.live_report import LiveReport
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
    pre = None
    if p.kind != "none":  # scikit-learn (the preprocessors' base) is imported only when one is used
        from trainwell.data.preprocess import build as build_preprocessor

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
    shape, classes = splits.meta.input_shape, splits.meta.num_classes
    check_model_fits(lambda: build_model(cfg.model, shape, classes), f"model.kind = {cfg.model.kind!r}")
    model = build_model(cfg.model, shape, classes)
    i = cfg.init
    initializers.apply(model, i.scheme, bias=i.bias, mode=i.mode, std=i.std, output_init=i.output_layer,
                       generator=torch.Generator().manual_seed(cfg.train.seed))
    if cfg.train.trainable == "norm":
        train_only_norm(model)
    return Prepared(cfg=cfg, splits=splits, model=model, preprocessor=pre, device=device)


def preflight(prep: Prepared, examples: int | None = None) -> list[Verdict]:
    """Run every pre-flight check on the prepared model and a slice of its training data (RNG state untouched)."""
    cfg = prep.cfg
    n = examples or cfg.doctor.preflight_examples
    x, y = (t[:n].to(prep.device) for t in prep.splits.train)
    with torch.random.fork_rng(devices=[]):
        verdicts = preflight_checks.run_all(prep.model, x, y, loss_function(cfg.train.loss), cfg.optim.weight_decay,
                                            prep.splits.meta.num_classes)
    if cfg.model.kind == "cnn":
        verdicts.append(geometry_verdict(prep.model, prep.splits.meta.input_shape))
    return verdicts


def geometry_verdict(model: torch.nn.Module, input_shape: tuple[int, ...]) -> Verdict:
    """Warn about conv/pool layers whose windows do not tile their input (torch floors (W-F+2P)/S+1 and never
    sees the last rows/columns; the lecture calls such a layer invalid)."""
    from trainwell.cnn.summary import floored_layers, summarize

    lost = floored_layers(summarize(model, tuple(input_shape)))
    expected = "(W - F + 2P)/S + 1 an integer in every conv and pooling layer"
    if not lost:
        return Verdict("conv geometry", "pass", "every window tiles its input", expected, "")
    return Verdict("conv geometry", "warn", "; ".join(lost), expected,
                   "change stride or padding so the windows tile the input, or set model.geometry = 'strict' to "
                   "make this an error")


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


@dataclass
class _Parts:
    """What a config asks the trainer for, built (and so validated) before any folder is touched."""

    optimizer: object
    schedule: object
    constraints: list
    penalty: Penalty
    augment: object


def _training_parts(prep: Prepared) -> _Parts:
    cfg = prep.cfg
    opt = optim.from_config(prep.model, cfg.optim)
    steps_per_epoch = -(-len(prep.splits.train[0]) // cfg.train.batch_size)
    o = cfg.optim
    schedule = optim.build_schedule(opt, o.schedule, epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch,
                                    step_size=o.step_size, gamma=o.gamma, patience=o.patience, factor=o.factor,
                                    min_lr=o.min_lr, warmup_fraction=o.warmup_fraction)
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
    if cfg.report.tensorboard:
        try:
            loggers.require_tensorboard()
        except ImportError:
            raise ConfigError(f"report.tensorboard = true needs the tensorboard package: {loggers.INSTALL_HINT}, "
                              f"or set report.tensorboard = false") from None
    return _Parts(opt, schedule, constraints, penalty, augment)


def _trainer(prep: Prepared, parts: _Parts, run: RunDir, quiet: bool, progress, extra_callbacks=()) -> Trainer:
    cfg = prep.cfg
    monitors = [Monitor(every=cfg.doctor.monitor_every, path=run.path / "monitors.jsonl")] \
        if cfg.doctor.monitor_every else []
    stopper = stop_callback.from_config(cfg.stop)
    if stopper.divergence is not None and cfg.train.loss == "cross_entropy":
        stopper.divergence.expected = math.log(prep.splits.meta.num_classes)  # an untrained model's loss
    callbacks = [
        stopper,  # first: it adds criterion values to the metrics that get logged
        *parts.constraints,  # right after the optimizer step, before anything looks at the weights
        StepLosses(),
        *monitors,
        MetricsLogger(run.metrics),
        loggers.CSVLogger(run.path / "metrics.csv"),
        Interrupt(),  # before the checkpoint: the stop it requests makes the checkpoint save this epoch
        Checkpoint(run, every=cfg.train.checkpoint_every, minutes=cfg.train.checkpoint_minutes,
                   monitor=cfg.train.monitor,
                   extra={"config": cfg.to_dict(), "trainwell_version": trainwell.__version__}),
        *_report_callbacks(prep, run),
        *extra_callbacks,
    ]
    penalty = parts.penalty
    bar = progress if progress is not None else progress_mod.auto(quiet)
    if isinstance(bar, progress_mod.RichProgress):  # on a terminal: a bar over the steps of each epoch too
        callbacks.append(progress_mod.StepProgress(bar, -(-len(prep.splits.train[0]) // cfg.train.batch_size)))
    return Trainer(prep.model, parts.optimizer, cfg.train.loss, epochs=cfg.train.epochs,
                   batch_size=cfg.train.batch_size, schedule=parts.schedule, callbacks=callbacks, device=prep.device,
                   seed=cfg.train.seed, progress=bar,
                   penalty=penalty if penalty.active else None, augment=parts.augment)


def _report_callbacks(prep: Prepared, run: RunDir) -> list:
    """The live report.html and, with report.tensorboard, TensorBoard event files (after the metrics and the
    monitor, so each sees the epoch complete)."""
    cfg, shape = prep.cfg, prep.splits.meta.input_shape
    out = ([LiveReport(run.path, shape, every=cfg.report.every, every_seconds=cfg.report.every_seconds)]
           if cfg.report.enabled else [])
    if cfg.report.tensorboard:
        out.append(loggers.TensorBoardLogger(run.path / "tensorboard", every=cfg.doctor.monitor_every,
                                             input_shape=shape))
    return out


RESUME_KEYS = ("train.epochs", "train.checkpoint_every", "train.checkpoint_minutes", "train.threads", "train.device",
               "report.enabled", "report.every", "report.every_seconds", "report.tensorboard")
"""Config keys ``--resume`` may change: how long to train, how often to save, where to run, whether to report.
Anything else would make the resumed run a different run than the one its checkpoint belongs to."""


def config_of_run(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a run directory's resolved config; ``--set`` may change only :data:`RESUME_KEYS` (e.g. extend
    ``train.epochs``)."""
    from trainwell.config import apply_overrides, parse_override

    run = RunDir(run_dir)
    if not run.config.exists():
        raise TrainwellError(f"{run.config}: not found; --resume needs a trainwell run directory")
    for item in overrides or []:
        key = ".".join(parse_override(item)[0])
        if key not in RESUME_KEYS:
            raise ConfigError(f"--set {key} is not allowed with --resume: a resumed run keeps its config; only "
                              f"{', '.join(RESUME_KEYS)} may change (start a new run to change {key})")
    base = read_toml(run.config)
    cfg = config_from_dict(apply_overrides(base, list(overrides or [])))
    old = config_from_dict(base)
    if cfg.train.epochs != old.train.epochs and cfg.optim.schedule in ("onecycle", "cosine"):
        raise ConfigError(f"--set train.epochs={cfg.train.epochs} cannot extend this run: its optim.schedule = "
                          f"{cfg.optim.schedule!r} was planned over {old.train.epochs} epochs and has ended; start "
                          f"a new run (a new cycle) instead, or use schedule none, step or plateau to extend runs")
    return cfg


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
    found_lr = None
    if cfg.optim.lr == "find":  # the LR range test picks the rate; the run's config.toml records the number
        from trainwell import lr_find

        cfg, found_lr = lr_find.resolve(cfg, quiet)
    # config, data, model, optimizer, schedule and penalties are all built (so validated) before a folder is
    # touched: a bad config never costs a user an existing run
    claim = Claim.resume(resume) if resume is not None else None
    try:
        prep = prepare(cfg)
        if init_seed is not None:
            i = cfg.init
            initializers.apply(prep.model, i.scheme if i.scheme != "default" else "standard", bias=i.bias,
                               mode=i.mode, std=i.std, output_init=i.output_layer,
                               generator=torch.Generator().manual_seed(init_seed))
        if init_state is not None:
            prep.model.load_state_dict(init_state)
        if masks is not None:
            prune.apply_masks(prep.model, masks)
        if cfg.train.compile:
            prep.model.compile()  # in place: state_dict keys stay the same (torch.compile, inductor backend)
        parts = _training_parts(prep)
        if claim is not None:
            run = RunDir(claim.path)
            ckpt = check_training_checkpoint(load_checkpoint(run.last), run.last)
        else:
            claim = Claim.take("fit", out, force=force, name=cfg.name, config_hash=cfg.hash())
            run, ckpt = RunDir(claim.path), None
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    with claim:
        trainer = _trainer(prep, parts, run, quiet, progress, callbacks)
        if ckpt is not None:
            try:
                trainer.load_checkpoint_state(ckpt)
            except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise TrainwellError(f"{run.last}: does not match this run's model/optimizer ({first})") from None
            run.remove_stale_temp_files()
            run.truncate_metrics(ckpt["epoch"], ckpt["history"])
            atomic_write_text(run.config, to_toml(cfg))
            finished = ckpt.get("stop")
            if finished and not str(finished).startswith("interrupted"):
                # the run had stopped (a criterion or guard fired): resuming it finishes it, it trains no further
                trainer.epochs = ckpt["epoch"] + 1
        else:
            run.create()
            atomic_write_text(run.config, to_toml(cfg))
            run.metrics.write_text("", encoding="utf-8")
            (run.path / "monitors.jsonl").write_text("", encoding="utf-8")
            pre = []
            if cfg.doctor.preflight:
                progress_mod.note("running the doctor's pre-flight checks...", quiet)
                pre_tic = time.perf_counter()
                pre = preflight(prep)
                flagged = sum(v.status != "pass" for v in pre)
                outcome = f"{flagged} not passed (see the table at the end)" if flagged else "all passed"
                progress_mod.note(f"pre-flight: {len(pre)} checks in {time.perf_counter() - pre_tic:.1f} s, "
                                  f"{outcome}; training {cfg.train.epochs} epochs", quiet)
            atomic_write_json(run.path / "preflight.json", [v.as_dict() for v in pre])
            if masks is not None:
                atomic_torch_save(run.path / "masks.pt", {k: v.cpu() for k, v in masks.items()})
                atomic_write_json(run.path / "sparsity.json", prune.sparsity_report(masks))
        claim.started()
        fit_tic = time.perf_counter()
        with interrupt.handled() as signals:
            try:
                state = trainer.fit(prep.splits.train, prep.splits.val)
            except KeyboardInterrupt:  # a second signal: stopped mid-epoch, the last checkpoint on disk stays
                raise interrupt.Interrupted(run.path, signals.received or "SIGINT", len(trainer.state.history),
                                            saved=False) from None
        if ckpt is not None and state.stop is None and ckpt.get("stop") and len(state.history) == ckpt["epoch"] + 1:
            state.stop = ckpt["stop"]  # a finished run resumed: no epoch ran, its stop reason stands
        if signals.received is not None and (state.stop or "").startswith("interrupted"):
            raise interrupt.Interrupted(run.path, signals.received, len(state.history))
        fit_s = time.perf_counter() - fit_tic
        summary = _summary(prep, trainer, state, wall=time.perf_counter() - tic)
        summary["fit_s"] = round(fit_s, 4)
        if found_lr is not None:
            summary["lr_find"] = found_lr
        summary["doctor"] = _doctor_report(run, prep, trainer, state, summary)
        atomic_write_json(run.summary, summary)
        for tb in (cb for cb in trainer.callbacks if isinstance(cb, loggers.TensorBoardLogger)):
            tb.log_verdicts(summary["doctor"], state.step)
            tb.close()
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
    div = stopper.divergence
    ended_far_above = bool(history and div is not None and div.far_above_expected([history[-1]["train_loss"]]))
    return {
        "name": cfg.name,
        "config_hash": cfg.hash(),
        "dataset": cfg.data.name,
        "model": cfg.model.kind,
        "params": sum(p.numel() for p in prep.model.parameters()),
        "trainable_params": count_trainable(prep.model),
        "epochs": completed,
        "steps": state.step,
        "stop_reason": state.stop or (f"completed {cfg.train.epochs} epochs, but the loss "
                                      f"{history[-1]['train_loss']:.4g} ended above {div.factor:g} x the untrained "
                                      f"model's {div.expected:.4g}: a failed run" if ended_far_above
                                      else f"completed {cfg.train.epochs} epochs"),
        "failed": stopper.failure is not None or bool(history and not math.isfinite(history[-1]["train_loss"]))
        or ended_far_above,
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
