"""Config -> parts: data, the initialized model, the optimizer, schedule, penalties, augmentation, and the
trainer with a run's callbacks. Everything a config asks for is built (so validated) here before any folder is
touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

import trainwell
from trainwell import init as initializers
from trainwell import optim
from trainwell.config import Config
from trainwell.data import load
from trainwell.data.augment import build as build_augment
from trainwell.data.splits import Splits
from trainwell.doctor.monitors import Monitor
from trainwell.errors import ConfigError
from trainwell.manifest import record as record_written
from trainwell.nn.models import build_model
from trainwell.nn.norm import train_only_norm
from trainwell.nn.sdr import sdr_layers
from trainwell.nn.size import check_model_fits
from trainwell.pipeline.histograms_ahead import HistogramsAhead
from trainwell.regularize import Penalty
from trainwell.rundir import (
    RunDir,
)
from trainwell.train import distributed, loggers, stop_callback
from trainwell.train import progress as progress_mod
from trainwell.train.callbacks import Checkpoint, MetricsLogger, StepLosses
from trainwell.train.constraints import MaxNorm, SDRUpdate
from trainwell.train.interrupt import Interrupt
from trainwell.train.learners import autocast_context
from trainwell.train.live_report import LiveReport
from trainwell.train.population import narrow_state
from trainwell.train.trainer import Trainer, default_device


@dataclass
class Prepared:
    """Everything built from a config before training."""

    cfg: Config
    splits: Splits
    model: torch.nn.Module
    preprocessor: object | None
    device: torch.device


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


def summarize(cfg: Config, input_shape: tuple[int, ...] | None = None, classes: int | None = None):
    """The per-layer summary (:func:`trainwell.cnn.summary.summarize`) of the model ``cfg`` describes, for inputs
    ``input_shape`` and ``classes`` outputs (default: the dataset's, loaded as a fit loads it). Returns
    ``(input_shape, rows)``.

    Raises:
        TrainwellError: an input shape or model too large to build, or impossible geometry.
    """
    from trainwell.cnn.summary import summarize as summarize_model
    from trainwell.data.registry import num_classes
    from trainwell.nn.size import check_input_fits

    if input_shape is None:
        splits, _ = load_data(cfg)
        input_shape, classes = splits.meta.input_shape, classes or splits.meta.num_classes
    classes = classes or num_classes(cfg.data.name, cfg.data.options, cfg.data.root or None)  # a file's: read
    check_input_fits(input_shape, "input_shape")
    check_model_fits(lambda: build_model(cfg.model, input_shape, classes), f"model.kind = {cfg.model.kind!r}")
    return tuple(input_shape), summarize_model(build_model(cfg.model, input_shape, classes), input_shape)


def prepare(cfg: Config) -> Prepared:
    """Seed everything, load data, build and initialize the model (no training)."""
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    splits, pre = load_data(cfg)
    refuse_criteria_without_validation(cfg, len(splits.val[0]), len(splits.train[0]))
    if not splits.train[0].is_floating_point():
        raise ConfigError(
            f"dataset {cfg.data.name!r} gives integer tokens, which model.kind = {cfg.model.kind!r} cannot take: "
            f"use data.options.encoding = 'onehot'"
        )
    model = build_initialized(cfg, splits.meta.input_shape, splits.meta.num_classes)
    set_threads(cfg.train.threads, model, splits.meta.input_shape, cfg.train.batch_size, device)
    return Prepared(cfg=cfg, splits=splits, model=model, preprocessor=pre, device=device)


def _validation_readers(cfg: Config) -> list[tuple[str, str, str]]:
    """(criterion, the validation metric it reads, another setting that avoids it) for each of ``stop.criteria``
    that reads a validation metric every epoch (only with ``stop.strict``: otherwise one that is never logged
    is let pass)."""
    s = cfg.stop
    if not s.strict:
        return []
    return [(c, metric, other) for c, metric, other in (
        ("early_stopping", s.monitor, "--set stop.monitor=train_loss, "),
        ("generalization_loss", "val_loss", ""),
        ("loss_change", s.loss_monitor, "--set stop.loss_monitor=train_loss, "),
    ) if c in s.criteria and metric.startswith("val_")]


def refuse_criteria_without_validation(cfg: Config, n_val: int, n_train: int) -> None:
    """Refuse, before any folder is written, a stopping criterion that reads a validation metric in a run whose
    validation split is empty (it would never fire); the message names the settings that resolve it."""
    reads = _validation_readers(cfg) if not n_val else []
    if not reads:
        return
    criterion, metric, other = reads[0]
    why = ("data.val_fraction = 0" if cfg.data.val_fraction == 0 else
           f"data.val_fraction = {cfg.data.val_fraction:g} of {n_train} examples holds out none")
    raise ConfigError(f"stop.criteria {criterion!r} reads {metric} every epoch, but this run has no validation "
                      f"split ({why}): --set data.val_fraction=0.1 (or any fraction above 0), {other}or leave "
                      f"{criterion!r} out of stop.criteria")


def check_validation_split(cfg: Config) -> None:
    """:func:`refuse_criteria_without_validation` for a config whose data is not loaded yet (a sweep's members,
    checked before its folder is claimed): the data is loaded only when a criterion reads validation metrics."""
    if _validation_readers(cfg):
        splits, _ = load_data(cfg)
        refuse_criteria_without_validation(cfg, len(splits.val[0]), len(splits.train[0]))


def initialize(model: torch.nn.Module, cfg: Config, seed: int | None = None, scheme: str | None = None) -> None:
    """Initialize ``model`` in place as ``cfg.init`` says, with the generator seeded by ``seed`` (default:
    ``train.seed``); ``scheme`` overrides ``init.scheme``."""
    i = cfg.init
    initializers.apply(model, scheme or i.scheme, bias=i.bias, mode=i.mode, std=i.std, output_init=i.output_layer,
                       generator=torch.Generator().manual_seed(cfg.train.seed if seed is None else seed),
                       frozen=True)  # train.trainable = "norm" freezes the rest of a random net: it is initialized


def build_initialized(cfg: Config, input_shape: tuple[int, ...], classes: int) -> torch.nn.Module:
    """Build ``cfg.model`` for inputs ``input_shape`` and ``classes`` outputs and initialize it (torch's global RNG
    must already be seeded: layers that ``init.scheme = 'default'`` leaves alone use it)."""
    check_model_fits(lambda: build_model(cfg.model, input_shape, classes), f"model.kind = {cfg.model.kind!r}")
    model = build_model(cfg.model, input_shape, classes)
    initialize(model, cfg)
    if cfg.train.trainable == "norm":
        train_only_norm(model)
    return model


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


def run_callbacks(prep: Prepared, run: RunDir, *, constraints=(), ctx: distributed.Context | None = None,
                  member: int | None = None, steps: StepLosses | None = None, extra=()) -> list:
    """The callbacks that make ``run`` a run directory, in the order they must run: one list for a fit's trainer
    and for each population member, so a member's folder is a fit's folder (metrics.jsonl and .csv, best.pt,
    model.json, steps.jsonl; last.pt and report.html are written once the population ends).

    Args:
        constraints: applied right after each optimizer step (a fit's max-norm and SDR updates).
        ctx: under torchrun: the ranks agree on stopping and reseed; only rank 0 gets the writing callbacks.
        member: this run is member ``member`` of a population: no monitor (forward hooks cannot run under vmap),
            no interrupt of its own (the population has one), ``best.pt`` in the member's own architecture
            (``prep.model``) and the report page drawn at the end only.
        steps: the per-step loss recorder the run reads (a population's, shared by its members); None: its own.
        extra: the caller's callbacks, last (rank 0 only).
    """
    cfg = prep.cfg
    main = ctx is None or ctx.main
    own_steps = steps is None
    steps = StepLosses() if own_steps else steps
    # a run shorter than the cadence is observed at its middle (the report's histograms need one observation)
    every = min(cfg.doctor.monitor_every, max(1, cfg.train.epochs * _steps_per_epoch(cfg, prep.splits) // 2))
    monitors = [Monitor(every=every, path=run.path / "monitors.jsonl")] \
        if cfg.doctor.monitor_every and main and member is None else []
    return [
        _stopper(cfg, prep.splits.meta.num_classes),  # first: it adds criterion values to the metrics that get logged
        *constraints,  # right after the optimizer step, before anything looks at the weights
        *([steps] if own_steps else []),
        *monitors,
        *([MetricsLogger(run.metrics), loggers.CSVLogger(run.path / "metrics.csv")] if main else []),
        *([Interrupt()] if member is None else []),  # before the checkpoint: its stop makes the checkpoint save
        *([distributed.AgreeStop(ctx), distributed.RankSeeds(ctx, cfg.train.seed)] if ctx is not None else []),
        *([_run_checkpoint(prep, run, member),
           *_report_callbacks(prep, run, steps, member, monitors[0] if monitors else None), *extra]
          if main else []),  # rank 0 writes
    ]


def _run_checkpoint(prep: Prepared, run: RunDir, member: int | None) -> Checkpoint:
    """A fit's checkpoint (last.pt to resume, best.pt); a member's best.pt alone, in its own architecture (the
    population's checkpoint is what resumes it)."""
    if member is None:
        return _checkpoint(prep.cfg, run)
    template, views = prep.model.state_dict(), {}

    def member_weights(state) -> dict:  # views of the member's block, made once; the checkpoint copies them
        if not views:
            views.update(narrow_state(state.model.state_dict(), template, clone=False))
        return views

    return _checkpoint(prep.cfg, run, resumable=False, weights=member_weights)


def _trainer(prep: Prepared, parts: _Parts, run: RunDir, quiet: bool, progress, extra_callbacks=(),
             ctx: distributed.Context | None = None) -> Trainer:
    cfg = prep.cfg
    main = ctx is None or ctx.main
    callbacks = run_callbacks(prep, run, constraints=parts.constraints, ctx=ctx, extra=extra_callbacks)
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


def _report_callbacks(prep: Prepared, run: RunDir, steps: StepLosses, member: int | None = None,
                      monitor: Monitor | None = None) -> list:
    """The live report.html (and its histogram figure drawn ahead, once the monitor's last snapshot is taken:
    :mod:`~trainwell.pipeline.histograms_ahead`) and, with report.tensorboard, TensorBoard event files (after the
    metrics and the monitor, so each sees the epoch complete). A population member writes model.json and
    steps.jsonl as a fit does; its page is drawn once, at the end, and TensorBoard stays a fit's (its histograms
    need the module)."""
    cfg, shape = prep.cfg, prep.splits.meta.input_shape
    if member is not None:
        return [LiveReport(run.path, shape, model=prep.model, pages=False,
                           losses=lambda state: steps.member(member, state.step))] if cfg.report.enabled else []
    out = ([LiveReport(run.path, shape, every=cfg.report.every, every_seconds=cfg.report.every_seconds)]
           if cfg.report.enabled else [])
    if cfg.report.enabled and monitor is not None:
        out.append(HistogramsAhead(monitor, run.path, cfg.train.epochs * _steps_per_epoch(cfg, prep.splits)))
    if cfg.report.tensorboard:
        record_written(run.path / "tensorboard", tree=True)  # TensorBoard names its event files itself
        out.append(loggers.TensorBoardLogger(run.path / "tensorboard", every=cfg.doctor.monitor_every,
                                             input_shape=shape))
    return out
