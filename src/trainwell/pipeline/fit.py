"""One run: :func:`fit` trains the model a config describes (one process, or every rank under torchrun) and writes
its run directory; :func:`config_of_run` reads a run's config for ``resume``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from trainwell.config import Config, config_from_dict, read_toml, to_toml
from trainwell.doctor.monitors import Monitor
from trainwell.errors import ConfigError, TrainwellError
from trainwell.pipeline import data_fingerprint
from trainwell.pipeline.build import Prepared, _trainer, _training_parts, prepare
from trainwell.pipeline.histograms_ahead import HistogramsAhead
from trainwell.pipeline.lr_find import resolve_lr
from trainwell.pipeline.write import _distributed_keys, _start_run, write_run
from trainwell.runclaim import Claim
from trainwell.rundir import (
    RunDir,
    atomic_write_text,
    check_training_checkpoint,
    load_checkpoint,
    require_run_config,
)
from trainwell.train import distributed, interrupt, loggers, stop_callback
from trainwell.train.callbacks import Checkpoint, StepLosses
from trainwell.train.trainer import Trainer


@dataclass
class FitResult:
    summary: dict
    run_dir: Path
    model: torch.nn.Module
    rank: int = 0  # under torchrun: this process's rank (only rank 0 wrote run_dir)


RESUME_KEYS = ("train.epochs", "train.checkpoint_every", "train.checkpoint_minutes", "train.threads", "train.device",
               "train.dist_timeout_minutes", "report.enabled", "report.every", "report.every_seconds",
               "report.tensorboard")
"""Config keys ``--resume`` may change: how long to train, how often to save, where to run, whether to report.
Anything else would make the resumed run a different run than the one its checkpoint belongs to."""


def refuse_fewer_epochs(epochs: int, ckpt: dict) -> None:
    """Refuse to resume a run for fewer epochs than its checkpoint has already trained: its config would say
    ``epochs`` while its metrics and checkpoints hold more."""
    trained = ckpt["epoch"] + 1
    if epochs < trained:
        raise ConfigError(f"train.epochs = {epochs} is not allowed: the run has already trained {trained} epochs; "
                          f"resume it with train.epochs >= {trained}, or start a new run to train fewer")


def config_of_run(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a run directory's resolved config; ``--set`` may change only :data:`RESUME_KEYS` (e.g. extend
    ``train.epochs``, never below the epochs the run has already trained).

    Raises:
        ConfigError: an unknown key (with the nearest known one), a key outside :data:`RESUME_KEYS`, fewer epochs
            than the checkpoint holds, or other epochs under a schedule planned over the run's epochs.
    """
    from trainwell.config import apply_overrides, check_key, parse_override

    run = RunDir(run_dir)
    require_run_config(run_dir)
    for item in overrides or []:
        key = ".".join(parse_override(item)[0])
        check_key(key)  # a typo is named as one (did you mean ...), not as a key --resume keeps
        if key not in RESUME_KEYS:
            raise ConfigError(f"--set {key} is not allowed with --resume: a resumed run keeps its config; only "
                              f"{', '.join(RESUME_KEYS)} may change (start a new run to change {key})")
    base = read_toml(run.config)
    cfg = config_from_dict(apply_overrides(base, list(overrides or [])))
    old = config_from_dict(base)
    if cfg.train.epochs < old.train.epochs:  # a run never trains past its config's epochs: only fewer can be too few
        refuse_fewer_epochs(cfg.train.epochs, check_training_checkpoint(load_checkpoint(run.last), run.last))
    if cfg.train.epochs > old.train.epochs:  # a run a stopping criterion or guard ended stays ended
        stop = str(check_training_checkpoint(load_checkpoint(run.last), run.last).get("stop") or "")
        if stop and not stop.startswith("interrupted"):
            raise ConfigError(f"--set train.epochs={cfg.train.epochs} cannot extend this run: it was stopped "
                              f"({stop}) and a run a stopping criterion ended stays ended; start a new run to train "
                              f"longer (with other stop.criteria or stop.patience)")
    if cfg.train.epochs != old.train.epochs and cfg.optim.schedule in ("onecycle", "cosine"):
        raise ConfigError(f"--set train.epochs={cfg.train.epochs} cannot extend this run: its optim.schedule = "
                          f"{cfg.optim.schedule!r} was planned over {old.train.epochs} "
                          f"epoch{'s' * (old.train.epochs != 1)} and has ended; start a new run (a new cycle) "
                          "instead, or use schedule none, step or plateau to extend runs")
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
        cfg, found_lr = _resolve_lr(cfg, ctx, quiet)  # "find": the run's config.toml records the number found
        result = _fit(cfg, ctx, out=out, resume=resume, force=force, quiet=quiet, progress=progress,
                      callbacks=callbacks, setup=setup, figures=figures, found_lr=found_lr)
        distributed.finish(ctx)  # every rank arrives before any leaves the group
        return result
    finally:
        distributed.teardown(ctx)


def _resolve_lr(cfg: Config, ctx: distributed.Context | None, quiet: bool) -> tuple[Config, dict | None]:
    """:func:`~trainwell.pipeline.lr_find.resolve_lr`; under torchrun the LR range test runs on rank 0 alone, which
    shares the result, so every process trains with the same rate."""
    if ctx is None or cfg.optim.lr != "find":
        return resolve_lr(cfg, quiet)

    def find() -> dict:
        found, found_lr = resolve_lr(cfg, quiet)
        return {"config": found.to_dict(), "lr_find": found_lr}

    word = distributed.from_rank0(ctx, find, "LR range test")
    return config_from_dict(word["config"]), word["lr_find"]


def _fit(cfg: Config, ctx: distributed.Context | None, *, out, resume, force, quiet, progress, callbacks, setup,
         figures, found_lr) -> FitResult:
    tic = time.perf_counter()
    main = ctx is None or ctx.main
    start = distributed.StartUp(ctx)
    with start.guard():
        word = start.wait()  # rank 0 builds, checks and claims first; the others start when it says so
        # config, data, model, optimizer, schedule and penalties are all built (so validated) before a folder is
        # touched: a bad config never costs a user an existing run
        claim = Claim.resume(resume) if resume is not None and main else None
        try:
            if claim is not None:  # before the data are read: a moved or edited file is named as the run's own
                data_fingerprint.check_unchanged(claim.path, cfg.data.root)
            prep, parts = _build(cfg, ctx, setup)
            run, ckpt, claim = _open_run(cfg, claim, word, out=out, resume=resume, force=force, main=main)
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        with claim if claim is not None else contextlib.nullcontext():
            preflight_s = None
            if ckpt is None and main:
                preflight_s, _ = _start_run(run, cfg, prep, quiet)
            start.tell(str(Path(run.path).resolve()), cfg.train.batch_size)
            trainer = _trainer(prep, parts, run, quiet, progress, callbacks, ctx)  # DDP: a collective of all ranks
            if ckpt is not None:
                _continue(trainer, ckpt, run, cfg, main)
            if main:
                claim.started()
            fit_tic = time.perf_counter()
            state = _train(trainer, prep, run, ckpt, main)
            fit_s = time.perf_counter() - fit_tic
            summary = None
            if main:  # a signal now lets the finished run's files be written whole (report-live.js, summary)
                with interrupt.handled("the run has finished training: writing its files"):
                    summary = _write(trainer, run, prep, state, wall=time.perf_counter() - tic, fit_s=fit_s,
                                     figures=figures, extra={**_distributed_keys(cfg, ctx),
                                                             **({"lr_find": found_lr} if found_lr is not None else {}),
                                                             **({"preflight_s": preflight_s} if preflight_s else {})})
            if ctx is not None:
                summary = ctx.share(summary)  # every rank returns (and exits with) rank 0's result
    return FitResult(summary=summary, run_dir=run.path, model=prep.model, rank=ctx.rank if ctx is not None else 0)


def _build(cfg: Config, ctx: distributed.Context | None, setup) -> tuple[Prepared, object]:
    """The prepared model (on this rank's device, SyncBatchNorm, ``setup`` applied, compiled) and its parts."""
    prep = prepare(cfg)
    if ctx is not None:
        prep.device = ctx.device
        if cfg.train.sync_bn:
            prep.model = distributed.convert_sync_bn(prep.model, ctx)
    if setup is not None:
        setup(prep.model)
    if cfg.train.compile:
        # in place: state_dict keys stay the same (torch.compile, inductor backend)
        prep.model.compile(mode=compile_mode(cfg.train.compile_mode, prep.device))
    return prep, _training_parts(prep)


def compile_mode(setting: str, device) -> str:
    """The ``torch.compile`` mode for ``train.compile_mode = setting`` on ``device``: ``"auto"`` is
    ``"reduce-overhead"`` on CUDA - the forward and backward are captured as CUDA graphs and replayed, so a step
    no longer pays a launch per kernel, the cost that dominates small models on a GPU - and ``"default"`` on a
    CPU, which has no graphs to capture; any other setting is used as it is.

    Example:
        >>> compile_mode("auto", "cuda"), compile_mode("auto", "cpu"), compile_mode("max-autotune", "cpu")
        ('reduce-overhead', 'default', 'max-autotune')
    """
    import torch

    if setting != "auto":
        return setting
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


def _open_run(cfg: Config, claim: Claim | None, word: dict, *, out, resume, force, main: bool):
    """The run directory, its checkpoint when resuming (else None), and the claim on it (rank 0 only)."""
    if not main:
        run = RunDir(word["run"])
        ckpt = check_training_checkpoint(load_checkpoint(run.last), run.last) if resume is not None else None
        return run, ckpt, claim
    if claim is not None:
        run = RunDir(claim.path)
        ckpt = check_training_checkpoint(load_checkpoint(run.last), run.last)
        refuse_fewer_epochs(cfg.train.epochs, ckpt)  # before config.toml is rewritten
        return run, ckpt, claim
    claim = Claim.take("fit", out, force=force, name=cfg.name, config_hash=cfg.hash())
    return RunDir(claim.path), None, claim


def _continue(trainer: Trainer, ckpt: dict, run: RunDir, cfg: Config, main: bool) -> None:
    """Load a checkpoint into the trainer; rank 0 trims the run's logs back to it."""
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


def _train(trainer: Trainer, prep: Prepared, run: RunDir, ckpt: dict | None, main: bool):
    """``trainer.fit`` with signals handled: the first stops at the end of the epoch (saved), a second at once."""
    with interrupt.handled() as signals:
        try:
            val = prep.splits.val_or_none() if prep.cfg.train.val_each_epoch else None
            state = trainer.fit(prep.splits.train, val)
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
    return state


def _write(trainer: Trainer, run: RunDir, prep: Prepared, state, *, wall: float, fit_s: float, figures: bool,
           extra: dict) -> dict:
    """Rank 0: write the run directory from what the run's callbacks recorded; close TensorBoard."""
    stopper = next(cb for cb in trainer.callbacks if isinstance(cb, stop_callback.Stopper))
    checkpoint = next(cb for cb in trainer.callbacks if isinstance(cb, Checkpoint))
    losses = next((cb.losses for cb in trainer.callbacks if isinstance(cb, StepLosses)), [])
    monitor = next((cb for cb in trainer.callbacks if isinstance(cb, Monitor)), None)
    summary = write_run(run, prep, state, stopper, best=checkpoint.best_epoch, losses=losses,
                        monitor=monitor.verdicts() if monitor is not None else [], wall=wall, fit_s=fit_s,
                        figures=figures, extra=extra,
                        histograms=next((cb for cb in trainer.callbacks if isinstance(cb, HistogramsAhead)), None))
    for tb in (cb for cb in trainer.callbacks if isinstance(cb, loggers.TensorBoardLogger)):
        tb.log_verdicts(summary["doctor"], state.step)
        tb.log_hparams(loggers.flat_hparams(prep.cfg.to_dict()), summary["final"])
        tb.close()
    return summary
