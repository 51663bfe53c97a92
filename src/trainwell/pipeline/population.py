"""The population's wiring: many configs trained as one vmapped population, each member written like a fit.

Part of :mod:`trainwell.pipeline` (the one place that wires parts): the members are built, initialized and
written by the same functions as a single ``fit``; only what differs for a population is here - which configs can
share one population (:func:`population_blocker`), grid keys that change nothing (:func:`inert_model_keys`), and
:func:`fit_population`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

import trainwell
from trainwell import optim
from trainwell.config import Config, config_from_dict, read_toml
from trainwell.data import corrupt
from trainwell.data.splits import Splits
from trainwell.durability import synced_together
from trainwell.errors import ConfigError, ParameterError, TrainwellError
from trainwell.nn.models import build_model
from trainwell.pipeline.build import (
    Prepared,
    _checkpoint,
    _schedule_builder,
    _steps_per_epoch,
    build_initialized,
    load_data,
    resolve_device,
    run_callbacks,
    set_threads,
)
from trainwell.pipeline.fit import FitResult
from trainwell.pipeline.lr_find import resolve_lr
from trainwell.pipeline.population_folders import refuse_used_folders
from trainwell.pipeline.write import _start_run, preflight_key, write_run
from trainwell.rundir import RunDir, atomic_torch_save, load_checkpoint
from trainwell.train import interrupt
from trainwell.train import progress as progress_mod
from trainwell.train.callbacks import StepLosses, best_epoch
from trainwell.train.interrupt import Interrupt
from trainwell.train.population import PopulationLearner, embed_state, narrow_state
from trainwell.train.trainer import Trainer

# what members of one population may differ in: each member is built and initialized from its own config (so any
# init.* setting is only its starting weights), then trained with its own seed, rate, decay, width and labels
POPULATION_KEYS = ("train.seed", "optim.lr", "optim.weight_decay", "model.hidden", "data.label_noise",
                   "data.corrupt_seed", "init.scheme", "init.bias", "init.mode", "init.std", "init.output_layer")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "options":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _model_signature(cfg: Config, shape: tuple[int, ...], classes: int) -> tuple:
    """What a model config builds: its structure and, built with a fixed seed, its initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(cfg.model, shape, classes)
    return repr(model), [(k, tuple(v.shape), v.detach().double().sum().item()) for k, v in model.state_dict().items()]


def inert_model_keys(configs: Sequence[tuple[dict, Config]]) -> list[str]:
    """Grid keys under ``model.`` whose values all build the same model (e.g. ``model.hidden`` on a CNN): a sweep
    over them would train copies. ``configs`` are (settings, config) pairs; returns the inert keys."""
    keys = sorted({k for settings, _ in configs for k in settings if k.startswith("model.")})
    if not keys:
        return []
    splits, _ = load_data(configs[0][1])
    shape, classes = splits.meta.input_shape, splits.meta.num_classes
    inert = []
    for key in keys:
        seen: dict[str, Config] = {}
        for settings, c in configs:
            seen.setdefault(repr(settings.get(key)), c)
        signatures = {repr(_model_signature(c, shape, classes)) for c in seen.values()}
        if len(seen) > 1 and len(signatures) == 1:
            inert.append(key)
    return inert


def population_blocker(configs: Sequence[Config]) -> str | None:
    """Why ``configs`` cannot train as one vmapped population (None if they can): the members may differ only in
    :data:`POPULATION_KEYS`, and the settings they share must be expressible per member with vmap."""
    return _differing_key(configs) or _width_blocker(configs) or _model_blocker(configs[0]) or \
        _training_blocker(configs[0])


def _differing_key(configs: Sequence[Config]) -> str | None:
    flat0 = _flatten(configs[0].to_dict())
    for other in configs[1:]:
        flat = _flatten(other.to_dict())
        differ = sorted(k for k in flat0 if flat[k] != flat0[k] and k not in POPULATION_KEYS and k != "name")
        if differ:
            return f"config key {differ[0]!r} differs between members (only {', '.join(POPULATION_KEYS)} may)"
    return None


def _width_blocker(configs: Sequence[Config]) -> str | None:
    """Members of different widths are embedded in the widest MLP, their extra units masked to zero."""
    cfg, hidden = configs[0], [c.model.hidden for c in configs]
    if all(h == hidden[0] for h in hidden):
        return None
    if cfg.model.kind != "mlp":
        return "width sweeps are for MLPs"
    if cfg.model.activation not in ("relu", "tanh", "leaky_relu", "linear"):
        return f"width masking needs act(0) = 0; {cfg.model.activation!r} does not have it"
    if len({len(h) for h in hidden}) > 1:
        return "every width setting must have the same number of hidden layers"
    if cfg.model.norm != "none":
        return "width masking needs unnormalized layers (a norm layer mixes the zero units in)"
    return None


def _model_blocker(cfg: Config) -> str | None:
    m = cfg.model
    if m.norm == "batch":
        return "BatchNorm's running statistics cannot be vmapped"
    if m.dropout_keep < 1 or m.dropout_mode == "uout" or m.activation == "drop_activation":
        return "dropout-style noise would not match one-at-a-time runs"
    if m.l0 or m.sdr or m.skip_io:
        return "gated, stochastic or skip-connected layers are trained one at a time"
    return _block_blocker(m.blocks) if m.kind == "cnn" else None


def _block_blocker(blocks: list[dict]) -> str | None:
    """A CNN's own blocks: a BatchNorm block (``{type = "norm"}``, kind "batch" by default) or a noise block
    (dropout keeping less than all units, Uout) blocks the population as ``model.norm`` and dropout do."""
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "norm" and block.get("kind", "batch") == "batch":
            return f"model.blocks[{i}] is BatchNorm: its running statistics cannot be vmapped"
        if kind == "uout" or (kind == "dropout" and block.get("keep_prob", 0.5) < 1):
            return f"model.blocks[{i}] ({kind}): dropout-style noise would not match one-at-a-time runs"
    return None


def _training_blocker(cfg: Config) -> str | None:
    r = cfg.regularize
    if r.l1 or r.l2 or r.activity or r.l0 or r.max_norm:
        return "penalties and constraints are applied one model at a time"
    if cfg.augment.kind != "none" or cfg.augment.input_noise:
        return "augmentation is applied one model at a time"
    if cfg.optim.name not in optim.population_optimizers():
        return f"optimizer {cfg.optim.name!r} has no population version"
    if cfg.train.trainable != "all":
        return "train.trainable = 'norm' is applied one model at a time"
    if cfg.train.compile:
        return "train.compile compiles one module; a population is vmapped instead"
    if cfg.train.precision != "fp32":
        return f"train.precision = {cfg.train.precision!r} (autocast) is applied one model at a time"
    if cfg.train.loss != "cross_entropy":
        return f"train.loss = {cfg.train.loss!r} is not vmapped per member (cross_entropy is)"
    return None


def _one_data_order(configs: Sequence[Config], device: torch.device) -> bool | None:
    """True where every member draws the same batches (one seed: the loop's per-member generators agree; the
    population refuses augmentation, input noise and dropout) and the device is a GPU, where the learner does not
    compare the rows itself; None (the learner finds out each step) on a CPU; False with several seeds."""
    if len({c.train.seed for c in configs}) > 1:
        return False
    return True if device.type != "cpu" else None


@dataclass
class PopulationResult:
    """Each member's :class:`FitResult` (its own run directory) and the checks that could not run under vmap."""

    members: list[FitResult]
    skipped: list[str]
    wall_s: float


def _same_config(run: RunDir, cfg: Config) -> None:
    """A resumed member keeps the config it started with (its ``config.toml``); only what ``fit --resume`` lets
    change may differ (:data:`~trainwell.pipeline.fit.RESUME_KEYS`: more epochs, saving, device, reporting)."""
    from trainwell.pipeline.fit import RESUME_KEYS

    if not run.config.exists():
        return
    old, new = _flatten(config_from_dict(read_toml(run.config)).to_dict()), _flatten(cfg.to_dict())
    changed = next((k for k in sorted(set(old) | set(new)) if k not in RESUME_KEYS and old.get(k) != new.get(k)),
                   None)
    if changed is not None:
        raise TrainwellError(f"{run.config}: this member started with {changed} = {old.get(changed)!r}, not "
                             f"{new.get(changed)!r}: resume with the configs the population started with (only "
                             f"{', '.join(RESUME_KEYS)} may change)")
    if new["train.epochs"] != old["train.epochs"] and cfg.optim.schedule in ("onecycle", "cosine"):
        raise TrainwellError(f"{run.config}: train.epochs = {cfg.train.epochs} cannot extend this population: its "
                             f"optim.schedule = {cfg.optim.schedule!r} was planned over {old['train.epochs']} epochs")


def fit_population(configs: Sequence[Config], *, out: str | Path, resume: bool = False, quiet: bool = True,
                   progress=None, callbacks=(), member_dirs: Sequence[str | Path] | None = None,
                   force: bool = False) -> PopulationResult:
    """Train ``configs`` as one vmapped population with the one fit loop; member m's run directory is
    ``out/member-m`` (or ``member_dirs[m]``), written exactly as :func:`fit` writes a run (same summary keys), and
    the population's checkpoint is ``out/checkpoints/last.pt`` (``resume=True`` continues from it). A member
    folder that already holds files, or an ``out`` that holds a population's checkpoint, is refused unless
    ``resume`` or ``force`` (then written over).

    Raises:
        ConfigError: the configs cannot train as one population (the reason: see :func:`population_blocker`).
        TrainwellError: ``configs`` empty or not configs, or a folder in use (above).
    """
    if not isinstance(configs, (list, tuple)) or not configs or not all(isinstance(c, Config) for c in configs):
        raise TrainwellError("fit_population: configs must be a non-empty list of trainwell Configs "
                             "(trainwell.config.load_config(...) or config_from_dict(...)), one per member")
    tic = time.perf_counter()
    resolved = [resolve_lr(c, quiet) for c in configs]  # "find": each member's own range test, as its fit's
    configs, found_lrs = [c for c, _ in resolved], [f for _, f in resolved]
    blocker = population_blocker(configs)
    if blocker is not None:
        raise ConfigError(f"these runs cannot train as one population: {blocker}")
    base, size, out = configs[0], len(configs), Path(out)
    if out.exists() and not out.is_dir():
        raise TrainwellError(f"fit_population: out={str(out)!r} is a file: give a folder (new, or a population's "
                             f"to resume)")
    splits, preps, learner = _build(configs)
    skipped = ["monitor: forward hooks cannot run on a vmapped population"] if base.doctor.monitor_every else []
    runs = [RunDir(Path(d)) for d in member_dirs] if member_dirs is not None else \
        [RunDir(out / f"member-{m}") for m in range(size)]
    if len(runs) != size:
        raise ParameterError("member_dirs", f"{len(runs)} directories", f"for {size} members: give one per member")
    if not resume:
        refuse_used_folders(out, runs, force)
    step_losses = StepLosses()
    member_callbacks = [run_callbacks(prep, run, member=m, steps=step_losses)
                        for m, (prep, run) in enumerate(zip(preps, runs, strict=True))]
    home = RunDir(out)
    trainer = Trainer(learner, epochs=base.train.epochs, batch_size=base.train.batch_size,
                      callbacks=[step_losses, Interrupt(), _checkpoint(base, home, keep_best=False), *callbacks],
                      member_callbacks=member_callbacks, seed=[c.train.seed for c in configs],
                      progress=progress if progress is not None else progress_mod.auto(
                          quiet, label=f"mean of {size} members"))
    preflight_s: list[float | None] = [None] * len(runs)  # a resumed population ran its pre-flight before
    shared_from: list[str | None] = [None] * len(runs)
    if resume:
        ckpt = load_checkpoint(home.last)
        if not isinstance(ckpt.get("members"), list) or "params" not in ckpt:
            raise TrainwellError(f"{home.last}: holds a single run's checkpoint, not a population's: resume it "
                                 f"with fit(resume=...) or trainwell fit --resume")
        if len(ckpt["members"]) != size:
            raise TrainwellError(f"{home.last}: a population of {len(ckpt['members'])} members, and {size} configs "
                                 f"were given: give the configs it was started with")
        for run, cfg in zip(runs, configs, strict=True):
            _same_config(run, cfg)
        try:
            trainer.load_checkpoint_state(ckpt)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise TrainwellError(f"{home.last}: does not match this population ({first})") from None
        for run in (home, *runs):
            run.remove_stale_temp_files()
        for run in runs:
            run.truncate_metrics(ckpt["epoch"], ckpt["members"][runs.index(run)]["history"])
    else:
        home.checkpoints.mkdir(parents=True, exist_ok=True)
        with synced_together():  # every member's new files: one sync for all
            preflight_s, shared_from = _start_runs(runs, configs, preps)
    fit_tic = time.perf_counter()
    _train(trainer, (splits.train[0], torch.stack([p.splits.train[1] for p in preps])),
           splits.val_or_none() if configs[0].train.val_each_epoch else None, home)
    fit_s = time.perf_counter() - fit_tic
    wall = time.perf_counter() - tic
    extra = [{**({"preflight_s": preflight_s[m]} if preflight_s[m] else {}),
              **({"preflight_shared_from": shared_from[m]} if shared_from[m] is not None else {}),
              "population": {"member": m, "size": size, "skipped_checks": skipped},
              **({"lr_find": found_lrs[m]} if found_lrs[m] is not None else {})} for m in range(size)]
    with synced_together():
        results = _write_members(trainer, preps, runs, step_losses, extra, wall=wall / size, fit_s=fit_s / size)
    return PopulationResult(members=results, skipped=skipped, wall_s=time.perf_counter() - tic)


def _start_runs(runs: list[RunDir], configs: list[Config], preps: list[Prepared]
                ) -> tuple[list[float | None], list[str | None]]:
    """Every member's fresh folder, with its pre-flight verdicts: computed once per distinct
    :func:`~trainwell.pipeline.write.preflight_key` and written to each member that shares it. Returns each
    member's pre-flight seconds (None where it reused another's) and the folder whose verdicts it reused, relative
    to the member's parent folder (``member-2`` in a sweep; a population may be one part of a larger sweep, so a
    position in it would not name the folder)."""
    seconds: list[float | None] = []
    shared_from: list[str | None] = []
    first: dict[tuple, tuple[RunDir, list]] = {}
    for run, cfg, prep in zip(runs, configs, preps, strict=True):
        key = preflight_key(prep) if cfg.doctor.preflight else None
        source, verdicts = first.get(key, (None, None)) if key is not None else (None, None)
        took, verdicts = _start_run(run, cfg, prep, verdicts=verdicts)
        seconds.append(took)
        shared_from.append(None if source is None else
                           os.path.relpath(Path(source.path).resolve(), Path(run.path).resolve().parent))
        if key is not None and source is None:
            first[key] = (run, verdicts)
    return seconds, shared_from


def _build(configs: list[Config]) -> tuple[Splits, list[Prepared], PopulationLearner]:
    """The shared data, each member prepared as a fit would be (its own model, labels and config), and the
    population learner holding them all (narrower MLPs embedded in the widest)."""
    base = configs[0]
    device = resolve_device(base.train.device)
    torch.manual_seed(base.train.seed)
    clean = config_from_dict({**base.to_dict(), "data": {**base.to_dict()["data"], "label_noise": 0.0}})
    splits, pre = load_data(clean)  # each member draws its own label noise below, as the registry would
    if not splits.train[0].is_floating_point():
        raise ConfigError(f"dataset {base.data.name!r} gives integer tokens: use data.options.encoding = 'onehot'")
    shape, classes = splits.meta.input_shape, splits.meta.num_classes
    models = []
    for c in configs:
        torch.manual_seed(c.train.seed)
        models.append(build_initialized(c, shape, classes))
    widest = [max(w) for w in zip(*(c.model.hidden for c in configs), strict=True)]
    wide = build_model(config_from_dict({**base.to_dict(), "model": {**base.to_dict()["model"], "hidden": widest}})
                       .model, shape, classes)
    states = [embed_state(m.state_dict(), wide.state_dict()) for m in models]
    set_threads(base.train.threads, wide, shape, base.train.batch_size, device, members=len(configs))
    labels = []
    for c in configs:
        y = splits.train[1]
        if c.data.label_noise > 0 and not c.data.random_labels:
            y = corrupt.label_noise(y, c.data.label_noise, classes, c.data.corrupt_seed)
        labels.append(y)
    preps = [Prepared(cfg=c, splits=replace(splits, train=(splits.train[0], y)), model=m, preprocessor=pre,
                      device=device) for c, m, y in zip(configs, models, labels, strict=True)]
    spe = _steps_per_epoch(base, splits)
    o = base.optim
    learner = PopulationLearner(wide, states, optimizer=o.name, lrs=[c.optim.lr for c in configs],
                                weight_decays=[c.optim.weight_decay for c in configs], decay=o.decay,
                                momentum=o.momentum if o.name != "sgd" else None,
                                nesterov=o.nesterov and o.name != "sgd", betas=o.betas, eps=o.eps,
                                alpha=o.alpha, rmsprop_momentum=o.rmsprop_momentum,
                                loss_fn=base.train.loss, schedule=_schedule_builder(base, spe),
                                epochs=base.train.epochs, steps_per_epoch=spe, device=device,
                                shared_input=_one_data_order(configs, device), cuda_graph=base.train.cuda_graph)
    return splits, preps, learner


def _write_members(trainer: Trainer, preps: list[Prepared], runs: list[RunDir], step_losses: StepLosses,
                   extra: list[dict], *, wall: float, fit_s: float) -> list[FitResult]:
    """Each member's weights back in its own model, its last.pt, and its run directory written as a fit's."""
    learner = trainer.learner
    finals = _final_metrics(learner, preps)
    results = []
    for m, (run, prep, member) in enumerate(zip(runs, preps, trainer.members, strict=True)):
        c = prep.cfg
        state = narrow_state(learner.member_state(m), prep.model.state_dict())
        prep.model.load_state_dict(state)
        atomic_torch_save(run.last, {"model": state, "config": c.to_dict(), "epoch": member.epoch,
                                     "step": member.step, "trainwell_version": trainwell.__version__})
        summary = write_run(run, prep, member, trainer.member_callbacks[m][0],
                            best=best_epoch(member.history, c.train.monitor), losses=step_losses.member(m, member.step),
                            monitor=[], wall=wall, fit_s=fit_s, extra=extra[m], final=finals[m])
        results.append(FitResult(summary=summary, run_dir=run.path, model=prep.model))
    return results


def _final_metrics(learner: PopulationLearner, preps: list[Prepared]) -> list[dict]:
    """Each member's final loss and accuracy on each split, as a fit's summary holds them
    (:func:`~trainwell.pipeline.write.final_metrics`), evaluated for all members together: one batched forward
    per split instead of one per member (a member's own labels where it has them, e.g. its label-noise draw).
    The values equal a separate evaluation to float rounding."""
    finals: list[dict] = [{} for _ in preps]
    for split in ("train", "val", "test"):
        x = getattr(preps[0].splits, split)[0]
        if not len(x):
            for final in finals:
                final[f"{split}_loss"] = final[f"{split}_acc"] = None
            continue
        labels = [getattr(p.splits, split)[1] for p in preps]
        y = labels[0] if all(t is labels[0] for t in labels) else torch.stack(labels)
        losses, accs = learner.evaluate(x, y)
        for final, loss, acc in zip(finals, losses, accs, strict=True):
            final[f"{split}_loss"], final[f"{split}_acc"] = loss, acc
    return finals


def _train(trainer: Trainer, train, val, home: RunDir) -> None:
    """``trainer.fit`` with signals handled as a fit's: the first stops the population at the end of the epoch and
    saves its checkpoint, a second stops at once (the last checkpoint on disk stays)."""
    with interrupt.handled() as signals:
        try:
            state = trainer.fit(train, val)
        except KeyboardInterrupt:
            raise interrupt.Interrupted(home.path, signals.received or "SIGINT", len(trainer.state.history),
                                        saved=False, command="sweep") from None
    if signals.received is not None and (state.stop or "").startswith("interrupted"):
        raise interrupt.Interrupted(home.path, signals.received, len(state.history), command="sweep")
