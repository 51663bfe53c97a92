"""The one place that wires the parts: config -> data -> preprocess -> model -> init -> trainer -> run dir.

The CLI, the sweep and the lab call :func:`fit` (one model) or :func:`fit_population` (M members trained at once by
the same loop); nothing else builds or initializes models, optimizers, penalties, augmentation or callbacks. Both
write each model's run directory with the same writer (:func:`write_run`), so a sweep member's run directory is
a fit's run directory. Callers customize a model through a general hook, ``setup(model)``, called after
initialization and before training (the lottery passes its starting weights and masks that way).

Example:
    >>> from trainwell.config import load_config
    >>> cfg = load_config(None, ["data.name=xor", "model.kind=mlp", "model.hidden=[8]", "train.epochs=2"])
    >>> result = fit(cfg, out="/tmp/trainwell-doctest", force=True, quiet=True)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import trainwell
from trainwell import init as initializers
from trainwell import optim
from trainwell.config import Config, config_from_dict, read_toml, to_toml
from trainwell.data import load
from trainwell.data.augment import build as build_augment
from trainwell.data.splits import Splits
from trainwell.doctor import diagnosis
from trainwell.doctor.check import check as doctor_check
from trainwell.doctor.monitors import Monitor
from trainwell.doctor.verdict import Verdict
from trainwell.errors import ConfigError, DataError, TrainwellError
from trainwell.manifest import record as record_written
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
    atomic_write_json,
    atomic_write_text,
    check_training_checkpoint,
    load_checkpoint,
    require_run_config,
)
from trainwell.train import distributed, interrupt, loggers, stop_callback
from trainwell.train import progress as progress_mod
from trainwell.train.callbacks import Checkpoint, MetricsLogger, StepLosses
from trainwell.train.constraints import MaxNorm, SDRUpdate
from trainwell.train.interrupt import Interrupt
from trainwell.train.learners import autocast_context
from trainwell.train.live_report import LiveReport
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
    rank: int = 0  # under torchrun: this process's rank (only rank 0 wrote run_dir)


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


# Training FLOPs per step (6 x multiply-adds per example x batch, x members) below which `train.threads = "auto"`
# uses one thread. Evidence (a 2-core x86_64 machine): the default MNIST-1D CNN step (0.35 GFLOP) takes
# 3.67 ms at 1 thread and 3.77 ms at 2, and a 2-thread process collapses (2 epochs: 9-17 s vs 0.47 s) whenever
# another process holds a core. Above it, torch's default (all cores) is kept: see benchmarks/RESULTS.md.
THREADS_FLOP_THRESHOLD = 1e9
_DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, before any run changed it


def step_flops(model: torch.nn.Module, input_shape: tuple[int, ...], batch_size: int) -> float:
    """Training FLOPs of one step: forward 2, backward 4 FLOPs per multiply-add (:mod:`trainwell.cnn.summary`)."""
    from trainwell.cnn.summary import summarize, totals

    with torch.random.fork_rng(devices=[]):
        return 6.0 * totals(summarize(model, input_shape))["mult_adds"] * batch_size


def set_threads(setting: str | int, model: torch.nn.Module, input_shape: tuple[int, ...], batch_size: int,
                device: torch.device, members: int = 1) -> int:
    """Apply ``train.threads``: a count, 0 (leave torch's setting), or "auto": one thread when a step's work is
    below :data:`THREADS_FLOP_THRESHOLD` on a CPU, torch's default otherwise. Returns the threads in use."""
    if setting == "auto" and device.type == "cpu":
        try:
            small = members * step_flops(model, input_shape, batch_size) < THREADS_FLOP_THRESHOLD
        except Exception:  # a model the summary cannot trace: keep torch's default  # noqa: BLE001
            small = False
        torch.set_num_threads(1 if small else _DEFAULT_THREADS)
    elif setting not in ("auto", 0):
        torch.set_num_threads(int(setting))
    return torch.get_num_threads()


def prepare(cfg: Config) -> Prepared:
    """Seed everything, load data, build and initialize the model (no training)."""
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    splits, pre = load_data(cfg)
    if not splits.train[0].is_floating_point():
        raise ConfigError(
            f"dataset {cfg.data.name!r} gives integer tokens, which model.kind = {cfg.model.kind!r} cannot take: "
            f"use data.options.encoding = 'onehot'"
        )
    model = build_initialized(cfg, splits.meta.input_shape, splits.meta.num_classes)
    set_threads(cfg.train.threads, model, splits.meta.input_shape, cfg.train.batch_size, device)
    return Prepared(cfg=cfg, splits=splits, model=model, preprocessor=pre, device=device)


def initialize(model: torch.nn.Module, cfg: Config, seed: int | None = None, scheme: str | None = None) -> None:
    """Initialize ``model`` in place as ``cfg.init`` says, with the generator seeded by ``seed`` (default:
    ``train.seed``); ``scheme`` overrides ``init.scheme``."""
    i = cfg.init
    initializers.apply(model, scheme or i.scheme, bias=i.bias, mode=i.mode, std=i.std, output_init=i.output_layer,
                       generator=torch.Generator().manual_seed(cfg.train.seed if seed is None else seed))


def build_initialized(cfg: Config, input_shape: tuple[int, ...], classes: int) -> torch.nn.Module:
    """Build ``cfg.model`` for inputs ``input_shape`` and ``classes`` outputs and initialize it (torch's global RNG
    must already be seeded: layers that ``init.scheme = 'default'`` leaves alone use it)."""
    check_model_fits(lambda: build_model(cfg.model, input_shape, classes), f"model.kind = {cfg.model.kind!r}")
    model = build_model(cfg.model, input_shape, classes)
    initialize(model, cfg)
    if cfg.train.trainable == "norm":
        train_only_norm(model)
    return model


def preflight(prep: Prepared, examples: int | None = None) -> list[Verdict]:
    """Run every pre-flight check (:func:`trainwell.doctor.check`) on the prepared model and a slice of its
    training data, with every configured penalty (L1, L2, activity, L0 and the optimizer's weight decay); the
    model, its gradients and the RNG state are left untouched."""
    cfg, r = prep.cfg, prep.cfg.regularize
    n = examples or cfg.doctor.preflight_examples
    # the checks run where the model is now (the trainer moves it to train.device later)
    where = next((p.device for p in prep.model.parameters()), torch.device("cpu"))
    x, y = (t[:n].to(where) for t in prep.splits.train)
    penalty = Penalty(prep.model, l1=r.l1, l2=r.l2, activity=r.activity, l0=r.l0)
    try:
        report = doctor_check(prep.model, x, y, loss_function(cfg.train.loss),
                              penalty=penalty if penalty.active else None,
                              optimizer=optim.from_config(prep.model, cfg.optim),
                              num_classes=prep.splits.meta.num_classes)
    finally:
        if penalty.activity is not None:  # its hooks must not stay on the model that will train
            penalty.activity.remove()
    verdicts = report.verdicts
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


def postflight(prep: Prepared, losses: list[float], state, final: dict, overfit_epoch: int | None) -> list[Verdict]:
    """Diagnosis after training: the loss curve's learning rate (``losses``: one per step), bias/variance,
    overfitting."""
    verdicts = [diagnosis.learning_rate_diagnosis(losses, prep.cfg.train.batch_size)]
    human = prep.cfg.doctor.human_error
    human = human if human is not None else prep.splits.meta.human_error
    if final.get("train_acc") is not None and final.get("val_acc") is not None:
        verdicts.append(diagnosis.bias_variance(1 - final["train_acc"], 1 - final["val_acc"], human))
    verdicts.append(diagnosis.overfitting(state.history, overfit_epoch))
    return verdicts


def _schedule_builder(cfg: Config, steps_per_epoch: int) -> Callable[[torch.optim.Optimizer], optim.Schedule]:
    """``build(optimizer) -> Schedule`` as ``cfg.optim`` describes (one fit, or each population member)."""
    o = cfg.optim

    def build(opt: torch.optim.Optimizer) -> optim.Schedule:
        return optim.build_schedule(opt, o.schedule, epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch,
                                    step_size=o.step_size, gamma=o.gamma, patience=o.patience, factor=o.factor,
                                    min_lr=o.min_lr, warmup_fraction=o.warmup_fraction)

    return build


def _steps_per_epoch(cfg: Config, splits: Splits) -> int:
    return -(-len(splits.train[0]) // cfg.train.batch_size)


def _checkpoint(cfg: Config, run: RunDir, **kwargs) -> Checkpoint:
    return Checkpoint(run, every=cfg.train.checkpoint_every, minutes=cfg.train.checkpoint_minutes,
                      monitor=cfg.train.monitor,
                      extra={"config": cfg.to_dict(), "trainwell_version": trainwell.__version__}, **kwargs)


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
    try:
        autocast_context(cfg.train.precision, prep.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.train.sync_bn and cfg.model.norm != "batch":
        raise ConfigError(f"train.sync_bn = true needs BatchNorm layers (model.norm = 'batch'); this model has "
                          f"model.norm = {cfg.model.norm!r}: set train.sync_bn = false")
    opt = optim.from_config(prep.model, cfg.optim)
    schedule = _schedule_builder(cfg, _steps_per_epoch(cfg, prep.splits))(opt)
    r = cfg.regularize
    constraints = [MaxNorm(r.max_norm)] if r.max_norm > 0 else []
    if sdr_layers(prep.model):
        constraints.append(SDRUpdate(r.sdr_beta, r.sdr_zeta, r.sdr_anneal, per_epoch=r.sdr_per_epoch or None,
                                     steps_per_epoch=-(-len(prep.splits.train[0]) // cfg.train.batch_size)))
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


def _stopper(cfg: Config, classes: int) -> stop_callback.Stopper:
    """The stopping criteria and guards of ``cfg.stop`` (divergence also against an untrained model's loss)."""
    stopper = stop_callback.from_config(cfg.stop)
    if stopper.divergence is not None and cfg.train.loss == "cross_entropy":
        stopper.divergence.expected = math.log(classes)  # an untrained model's loss
    return stopper


def _trainer(prep: Prepared, parts: _Parts, run: RunDir, quiet: bool, progress, extra_callbacks=(),
             ctx: distributed.Context | None = None) -> Trainer:
    cfg = prep.cfg
    main = ctx is None or ctx.main
    monitors = [Monitor(every=cfg.doctor.monitor_every, path=run.path / "monitors.jsonl")] \
        if cfg.doctor.monitor_every and main else []
    callbacks = [
        _stopper(cfg, prep.splits.meta.num_classes),  # first: it adds criterion values to the metrics that get logged
        *parts.constraints,  # right after the optimizer step, before anything looks at the weights
        StepLosses(),
        *monitors,
        *([MetricsLogger(run.metrics), loggers.CSVLogger(run.path / "metrics.csv")] if main else []),
        Interrupt(),  # before the checkpoint: the stop it requests makes the checkpoint save this epoch
        *([distributed.AgreeStop(ctx), distributed.RankSeeds(ctx, cfg.train.seed)] if ctx is not None else []),
        *([_checkpoint(cfg, run), *_report_callbacks(prep, run), *extra_callbacks] if main else []),  # rank 0 writes
    ]
    penalty = parts.penalty
    kwargs = {"schedule": parts.schedule, "penalty": penalty if penalty.active else None, "augment": parts.augment,
              "precision": cfg.train.precision}
    bar = progress_mod.NullProgress() if not main else progress if progress is not None else progress_mod.auto(quiet)
    if isinstance(bar, progress_mod.RichProgress):  # on a terminal: a bar over the steps of each epoch too
        callbacks.append(progress_mod.StepProgress(bar, -(-len(prep.splits.train[0]) // cfg.train.batch_size)))
    if ctx is not None:
        model = distributed.DistributedLearner(prep.model, parts.optimizer, cfg.train.loss, ctx=ctx,
                                               aug_seed=cfg.train.seed + 1, **kwargs)
        return Trainer(model, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size, callbacks=callbacks,
                       seed=cfg.train.seed, progress=bar)
    return Trainer(prep.model, parts.optimizer, cfg.train.loss, epochs=cfg.train.epochs,
                   batch_size=cfg.train.batch_size, callbacks=callbacks, device=prep.device,
                   seed=cfg.train.seed, progress=bar, **kwargs)


def _report_callbacks(prep: Prepared, run: RunDir) -> list:
    """The live report.html and, with report.tensorboard, TensorBoard event files (after the metrics and the
    monitor, so each sees the epoch complete)."""
    cfg, shape = prep.cfg, prep.splits.meta.input_shape
    out = ([LiveReport(run.path, shape, every=cfg.report.every, every_seconds=cfg.report.every_seconds)]
           if cfg.report.enabled else [])
    if cfg.report.tensorboard:
        record_written(run.path / "tensorboard", tree=True)  # TensorBoard names its event files itself
        out.append(loggers.TensorBoardLogger(run.path / "tensorboard", every=cfg.doctor.monitor_every,
                                             input_shape=shape))
    return out


RESUME_KEYS = ("train.epochs", "train.checkpoint_every", "train.checkpoint_minutes", "train.threads", "train.device",
               "train.dist_timeout_minutes", "report.enabled", "report.every", "report.every_seconds",
               "report.tensorboard")
"""Config keys ``--resume`` may change: how long to train, how often to save, where to run, whether to report.
Anything else would make the resumed run a different run than the one its checkpoint belongs to."""


def config_of_run(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a run directory's resolved config; ``--set`` may change only :data:`RESUME_KEYS` (e.g. extend
    ``train.epochs``)."""
    from trainwell.config import apply_overrides, parse_override

    run = RunDir(run_dir)
    require_run_config(run_dir)
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
        quiet: bool = False, progress=None, callbacks=(), setup: Callable[[torch.nn.Module], None] | None = None,
        figures: bool = False) -> FitResult:
    """Train the run ``cfg`` describes, write its run directory, and return its summary.

    Under ``torchrun`` with several processes the model trains with DistributedDataParallel
    (:mod:`trainwell.train.distributed`): ``train.batch_size`` is the global batch, only rank 0 writes (and runs the
    pre-flight before the others start), and every rank returns the same summary.

    Args:
        resume: continue the run in that directory from ``checkpoints/last.pt`` (the config is the run's own;
            ``cfg`` should come from :func:`config_of_run`). Under torchrun every node must see the directory.
        callbacks: added after the run's own (stopping, metrics logger, checkpoint); under torchrun they run on
            rank 0 only, so they may observe and write but must not change the model.
        setup: ``setup(model)`` is called after the model is built and initialized and before training (and
            before a checkpoint is loaded on resume), e.g. to load starting weights or apply pruning masks.
        figures: draw the figures (the first layer's weights) even when the report is off.

    Raises:
        DistributedError: under torchrun, another process failed or timed out.
    """
    ctx = distributed.setup(cfg.train.device, cfg.train.dist_timeout_minutes) if distributed.launched() else None
    try:
        found_lr = None
        if cfg.optim.lr == "find":  # the LR range test picks the rate; the run's config.toml records the number
            cfg, found_lr = _find_lr(cfg, ctx, quiet)
        result = _fit(cfg, ctx, out=out, resume=resume, force=force, quiet=quiet, progress=progress,
                      callbacks=callbacks, setup=setup, figures=figures, found_lr=found_lr)
        distributed.finish(ctx)  # every rank arrives before any leaves the group
        return result
    finally:
        distributed.teardown(ctx)


def _find_lr(cfg: Config, ctx: distributed.Context | None, quiet: bool) -> tuple[Config, object]:
    """``optim.lr = "find"``: run the LR range test (under torchrun on rank 0 alone, which shares the result, so
    every process trains with the same rate)."""
    from trainwell import lr_find

    if ctx is None:
        return lr_find.resolve(cfg, quiet)
    word = None
    if ctx.main:
        try:
            found, found_lr = lr_find.resolve(cfg, quiet)
            word = {"config": found.to_dict(), "lr_find": found_lr}
        except BaseException as exc:
            ctx.share({"error": " ".join(str(exc).split()) or type(exc).__name__})
            raise
    word = ctx.share(word)
    if word.get("error"):
        raise distributed.DistributedError(f"rank {ctx.rank}: rank 0's LR range test failed: {word['error']}")
    return config_from_dict(word["config"]), word["lr_find"]


def _fit(cfg: Config, ctx: distributed.Context | None, *, out, resume, force, quiet, progress, callbacks, setup,
         figures, found_lr) -> FitResult:
    tic = time.perf_counter()
    main = ctx is None or ctx.main
    told = ctx is None or not main  # whether rank 0 has told the other ranks how its setup went
    word: dict = {}
    try:
        if not main:  # rank 0 builds, checks and claims first; the others start when it says so
            word = ctx.share()
            if word.get("error"):
                raise distributed.DistributedError(f"rank {ctx.rank}: rank 0 stopped before training: {word['error']}")
        # config, data, model, optimizer, schedule and penalties are all built (so validated) before a folder is
        # touched: a bad config never costs a user an existing run
        claim = Claim.resume(resume) if resume is not None and main else None
        try:
            prep = prepare(cfg)
            if ctx is not None:
                prep.device = ctx.device
                if cfg.train.sync_bn:
                    prep.model = distributed.convert_sync_bn(prep.model, ctx)
            if setup is not None:
                setup(prep.model)
            if cfg.train.compile:
                prep.model.compile()  # in place: state_dict keys stay the same (torch.compile, inductor backend)
            parts = _training_parts(prep)
            if not main:
                run = RunDir(word["run"])
                ckpt = check_training_checkpoint(load_checkpoint(run.last), run.last) if resume is not None else None
            elif claim is not None:
                run = RunDir(claim.path)
                ckpt = check_training_checkpoint(load_checkpoint(run.last), run.last)
            else:
                claim = Claim.take("fit", out, force=force, name=cfg.name, config_hash=cfg.hash())
                run, ckpt = RunDir(claim.path), None
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        with claim if claim is not None else contextlib.nullcontext():
            if ckpt is None and main:
                _start_run(run, cfg, prep, quiet)
            if not told:
                ctx.share({"run": str(Path(run.path).resolve())})
                told = True
                print(ctx.describe(cfg.train.batch_size), file=sys.stderr, flush=True)
            trainer = _trainer(prep, parts, run, quiet, progress, callbacks, ctx)  # DDP: a collective of all ranks
            if ckpt is not None:
                try:
                    trainer.load_checkpoint_state(ckpt)
                except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise TrainwellError(f"{run.last}: does not match this run's model/optimizer ({first})") from None
                if main:
                    run.remove_stale_temp_files()
                    run.truncate_metrics(ckpt["epoch"], ckpt["history"])
                    atomic_write_text(run.config, to_toml(cfg))
                finished = ckpt.get("stop")
                if finished and not str(finished).startswith("interrupted"):
                    # the run had stopped (a criterion or guard fired): resuming it finishes it, it trains no further
                    trainer.epochs = ckpt["epoch"] + 1
            if main:
                claim.started()
            fit_tic = time.perf_counter()
            with interrupt.handled() as signals:
                try:
                    state = trainer.fit(prep.splits.train, prep.splits.val)
                except KeyboardInterrupt:  # a second signal: stopped mid-epoch, the last checkpoint on disk stays
                    raise interrupt.Interrupted(run.path, signals.received or "SIGINT", len(trainer.state.history),
                                                saved=False) from None
            resumed_only = ckpt is not None and len(state.history) == ckpt["epoch"] + 1  # no epoch ran now
            inherited = str(ckpt.get("stop") or "") if ckpt is not None else ""
            if resumed_only and state.stop is None and inherited and not inherited.startswith("interrupted"):
                state.stop = inherited  # a finished run resumed: no epoch ran, its stop reason stands
            if resumed_only and inherited.startswith("interrupted") and signals.received is None and main:
                # stopped by a signal after its last epoch: it has completed now, and last.pt says so
                next(cb for cb in trainer.callbacks if isinstance(cb, Checkpoint)).save(state)
            if signals.received is not None and (state.stop or "").startswith("interrupted"):
                raise interrupt.Interrupted(run.path, signals.received, len(state.history))
            fit_s = time.perf_counter() - fit_tic
            summary = None
            if main:
                stopper = next(cb for cb in trainer.callbacks if isinstance(cb, stop_callback.Stopper))
                checkpoint = next(cb for cb in trainer.callbacks if isinstance(cb, Checkpoint))
                losses = next((cb.losses for cb in trainer.callbacks if isinstance(cb, StepLosses)), [])
                monitor = next((cb for cb in trainer.callbacks if isinstance(cb, Monitor)), None)
                summary = write_run(run, prep, state, stopper, best=checkpoint.best_epoch, losses=losses,
                                    monitor=monitor.verdicts() if monitor is not None else [],
                                    wall=time.perf_counter() - tic, fit_s=fit_s, figures=figures,
                                    extra={**_distributed_keys(cfg, ctx),
                                           **({"lr_find": found_lr} if found_lr is not None else {})})
                for tb in (cb for cb in trainer.callbacks if isinstance(cb, loggers.TensorBoardLogger)):
                    tb.log_verdicts(summary["doctor"], state.step)
                    tb.log_hparams(loggers.flat_hparams(cfg.to_dict()), summary["final"])
                    tb.close()
            if ctx is not None:
                summary = ctx.share(summary)  # every rank returns (and exits with) rank 0's result
    except BaseException as exc:
        if not told:  # rank 0 failed before training: the others stop at once instead of waiting out the timeout
            told = True
            ctx.share({"error": " ".join(str(exc).split()) or type(exc).__name__})
        raise
    return FitResult(summary=summary, run_dir=run.path, model=prep.model, rank=ctx.rank if ctx is not None else 0)


def _distributed_keys(cfg: Config, ctx: distributed.Context | None) -> dict:
    """summary.json's record of how the run was spread: processes, backend, the global and per-process batch."""
    world = ctx.world_size if ctx is not None else 1
    return {"world_size": world, "backend": ctx.backend if ctx is not None else None,
            "global_batch_size": cfg.train.batch_size, "precision": cfg.train.precision}


def _start_run(run: RunDir, cfg: Config, prep: Prepared, quiet: bool = True) -> None:
    """A fresh run directory: config.toml, empty metrics/monitor logs, the pre-flight verdicts."""
    run.create()
    atomic_write_text(run.config, to_toml(cfg))
    run.write_empty("metrics.jsonl")
    run.write_empty("monitors.jsonl")
    pre = []
    if cfg.doctor.preflight:
        progress_mod.note("running the doctor's pre-flight checks...", quiet)
        tic = time.perf_counter()
        with progress_mod.checks_shown(quiet):
            pre = preflight(prep)
        flagged = sum(v.status != "pass" for v in pre)
        outcome = f"{flagged} not passed (see the table at the end)" if flagged else "all passed"
        progress_mod.note(f"pre-flight: {len(pre)} checks in {time.perf_counter() - tic:.1f} s, {outcome}; "
                          f"training {cfg.train.epochs} epochs", quiet)
    atomic_write_json(run.path / "preflight.json", [v.as_dict() for v in pre])


def write_run(run: RunDir, prep: Prepared, state, stopper: stop_callback.Stopper, *, best: int | None,
              losses: list[float], monitor: list[Verdict], wall: float, fit_s: float, figures: bool = False,
              extra: dict | None = None) -> dict:
    """Finish a run directory (one fit or one population member): summary.json with the final evaluation and the
    doctor's verdicts, the figures when asked for (or when the report is on), and report.html."""
    summary = _summary(prep, state, stopper, best, wall=wall)
    summary["fit_s"] = round(fit_s, 4)
    summary.update(extra or {})
    summary["doctor"] = _doctor_report(run, prep, state, stopper, summary, losses, monitor)
    atomic_write_json(run.summary, summary)
    if figures or prep.cfg.report.enabled:
        plots.first_layer_weights(prep.model, prep.splits.meta.input_shape, run.figures / "first_layer_weights.png")
    if prep.cfg.report.enabled:
        from trainwell.viz.build import build_report

        build_report(run.path)
    return summary


def _doctor_report(run: RunDir, prep: Prepared, state, stopper, summary: dict, losses: list[float],
                   monitor: list[Verdict]) -> list[dict]:
    """Pre-flight (saved at the start), monitor and post-flight verdicts, each tagged with its phase."""
    pre = json.loads((run.path / "preflight.json").read_text()) if (run.path / "preflight.json").exists() else []
    post = postflight(prep, losses, state, summary["final"], summary["stop"]["overfit_epoch"])
    return diagnosis.reconcile([{**v, "phase": "pre"} for v in pre]
                               + [{**v.as_dict(), "phase": "monitor"} for v in monitor]
                               + [{**v.as_dict(), "phase": "post"} for v in post])


def _summary(prep: Prepared, state, stopper, best: int | None, wall: float) -> dict:
    cfg, splits = prep.cfg, prep.splits
    loss_fn = loss_function(cfg.train.loss)
    final = {}
    # evaluate where the model is: a fit's model was trained on train.device, a population member's weights are
    # copied back into a CPU model
    where = next((p.device for p in prep.model.parameters()), prep.device)
    for split, (x, y) in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(x):
            m = evaluate(prep.model, x.to(where), y.to(where), loss_fn)
            final[f"{split}_loss"], final[f"{split}_acc"] = m["loss"], m["acc"]
        else:
            final[f"{split}_loss"] = final[f"{split}_acc"] = None
    shift_data = splits.val[0] if len(splits.val[0]) else splits.train[0]
    shift = variance_shift(prep.model, shift_data.to(where))  # [] when the model has no BatchNorm
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
        "best_epoch": best,
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
        **_distributed_keys(cfg, None),  # a torchrun fit overrides them
        "seed": cfg.train.seed,
        "sizes": splits.sizes(),
        "human_error": splits.meta.human_error,
    }


# -- populations ---------------------------------------------------------------------------------------------

__all__ = ["POPULATION_KEYS", "DataError", "FitResult", "PopulationResult", "Prepared", "build_initialized",
           "config_of_run", "fit", "fit_population", "inert_model_keys", "initialize", "load_data",
           "population_blocker", "postflight",
           "preflight", "prepare", "write_run"]

# the population's wiring (sweeps) lives beside this module and uses the helpers above
from trainwell.pipeline.population import (  # noqa: E402
    POPULATION_KEYS,
    PopulationResult,
    fit_population,
    inert_model_keys,
    population_blocker,
)
