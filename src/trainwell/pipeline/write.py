"""Writing a run directory: the pre-flight verdicts at the start, and at the end summary.json (the final
evaluation, the doctor's post-flight reading), the figures and report.html. One fit and each population member
are written by the same functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from pathlib import Path

import torch

import trainwell
from trainwell import optim
from trainwell.config import Config, to_toml
from trainwell.doctor import diagnosis
from trainwell.doctor.advice_voice import config_voice
from trainwell.doctor.check import check as doctor_check
from trainwell.doctor.verdict import Verdict
from trainwell.nn.l0 import l0_sparsity
from trainwell.nn.norm import count_trainable
from trainwell.nn.variance_shift import variance_shift
from trainwell.pipeline import data_fingerprint
from trainwell.pipeline.build import Prepared
from trainwell.pipeline.histograms_ahead import HistogramsAhead
from trainwell.regularize import Penalty, count_nonzero
from trainwell.rundir import (
    RunDir,
    atomic_write_json,
    atomic_write_text,
)
from trainwell.train import distributed, stop_callback
from trainwell.train import progress as progress_mod
from trainwell.train.callbacks import monitored_name
from trainwell.train.trainer import evaluate, loss_function
from trainwell.viz.figure_process import Figures
from trainwell.viz.first_layer import first_layer_units


def epochs_text(n: int) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{n} epoch{'' if n == 1 else 's'}"


def preflight_outcome(verdicts: list[Verdict]) -> str:
    """The pre-flight's verdicts in a few words: the warnings and failures, which `fit` lists in a table at its
    end (skipped and informational checks are only in summary.json and the report, and are counted apart)."""
    flagged = sum(v.status in ("warn", "fail") for v in verdicts)
    skipped = sum(v.status == "skip" for v in verdicts)
    others = len(verdicts) - flagged - skipped - sum(v.status == "pass" for v in verdicts)
    if not flagged and not skipped and not others:
        return "all passed"
    parts = [f"{flagged} warned or failed (see the table at the end)" if flagged else "none warned or failed"]
    if skipped:
        parts.append(f"{skipped} skipped")
    if others:
        parts.append(f"{others} for information")
    return ", ".join(parts)


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
        with config_voice():  # the advice names the config's keys (init.scheme), not torch's calls
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


def preflight_key(prep: Prepared, examples: int | None = None) -> tuple:
    """Everything :func:`preflight` reads, as a key: the model's structure, its modules' training flags and every
    parameter and buffer (values, dtypes, devices, ``requires_grad``), the examples it is given, the loss, the
    penalties and the weight decay. The checks seed their own randomness, so two models with equal keys get the
    same verdicts: a population runs the pre-flight once per distinct key (members that differ only in their
    learning rate, say)."""
    cfg = prep.cfg
    n = examples or cfg.doctor.preflight_examples
    digest = hashlib.blake2b(digest_size=16)
    tensors = [*prep.model.parameters(), *prep.model.buffers(), prep.splits.train[0][:n], prep.splits.train[1][:n]]
    for t in tensors:
        digest.update(f"{t.dtype} {tuple(t.shape)} {t.device} {t.requires_grad};".encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    modes = tuple(m.training for m in prep.model.modules())
    return (str(prep.model), modes, repr(cfg.train.loss), repr(cfg.regularize), cfg.optim.weight_decay,
            cfg.model.kind, tuple(prep.splits.meta.input_shape), prep.splits.meta.num_classes, digest.hexdigest())


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
        verdicts.append(diagnosis.bias_variance(1 - final["train_acc"], 1 - final["val_acc"], human,
                                                val_examples=len(prep.splits.val[1]) or None))
    verdicts.append(diagnosis.overfitting(state.history, overfit_epoch))
    return verdicts


def _distributed_keys(cfg: Config, ctx: distributed.Context | None) -> dict:
    """summary.json's record of how the run was spread: processes, backend, the global and per-process batch."""
    world = ctx.world_size if ctx is not None else 1
    return {"world_size": world, "backend": ctx.backend if ctx is not None else None,
            "global_batch_size": cfg.train.batch_size, "precision": cfg.train.precision}


def _start_run(run: RunDir, cfg: Config, prep: Prepared, quiet: bool = True,
               verdicts: list[Verdict] | None = None) -> tuple[float | None, list[Verdict]]:
    """A fresh run directory: config.toml, empty metrics/monitor logs, the pre-flight verdicts (``verdicts`` when
    given: those of a model with the same :func:`preflight_key`); returns the pre-flight's seconds (None when it is
    off or was not run here), which the summary reports as ``preflight_s``, and the verdicts."""
    run.create()
    atomic_write_text(run.config, to_toml(cfg))
    data_fingerprint.record(run.path, cfg.data.root)  # a resume then refuses a changed data file
    run.write_empty("metrics.jsonl")
    run.write_empty("monitors.jsonl")
    pre, seconds = verdicts or [], None
    if cfg.doctor.preflight and verdicts is None:
        progress_mod.note("running the doctor's pre-flight checks...", quiet)
        tic = time.perf_counter()
        with progress_mod.checks_shown(quiet):
            pre = preflight(prep)
        seconds = round(time.perf_counter() - tic, 4)
        progress_mod.note(f"pre-flight: {len(pre)} verdicts in {seconds:.1f} s, {preflight_outcome(pre)}; "
                          f"training {epochs_text(cfg.train.epochs)}", quiet)
    atomic_write_json(run.path / "preflight.json", [v.as_dict() for v in pre])
    return seconds, pre


def write_group_report(cfg: Config, folder: str | Path) -> Path | None:
    """A sweep's or prune's folder: its report.html (unless ``report.enabled = false``), written once the group is
    complete, as :func:`write_run` writes a fit's; returns its path (None when the report is off)."""
    if not cfg.report.enabled:
        return None
    from trainwell.viz.build import build_report

    return build_report(folder)


def write_run(run: RunDir, prep: Prepared, state, stopper: stop_callback.Stopper, *, best: int | None,
              losses: list[float], monitor: list[Verdict], wall: float, fit_s: float, figures: bool = False,
              extra: dict | None = None, final: dict | None = None,
              histograms: HistogramsAhead | None = None) -> dict:
    """Finish a run directory (one fit or one population member): summary.json with the final evaluation and the
    doctor's verdicts, the figures when asked for (or when the report is on), and report.html. ``final``: the
    final evaluation when the caller has it (a population evaluates its members together), as
    :func:`final_metrics` gives it. ``histograms``: the run's callback that sent the histogram figure to the
    drawing process during training (taken when it shows the last snapshot, else drawn again here)."""
    drawn = Figures()  # drawn by the drawing process while the summary is computed, when one runs
    if prep.cfg.report.enabled:  # the slowest first: the drawing process draws them side by side
        ahead = histograms.take() if histograms is not None else None
        if ahead is not None:
            drawn.adopt(ahead)
        else:
            drawn.add("report", run_dir=run.path, figures=("histograms",))
        drawn.add("report", run_dir=run.path, figures=("learning_curves",), best_epoch=best)
    if figures or prep.cfg.report.enabled:
        units = first_layer_units(prep.model, prep.splits.meta.input_shape)
        if units is not None:
            drawn.add("first_layer", units=units, path=run.figures / "first_layer_weights.png")
    summary = _summary(prep, state, stopper, best, wall=wall, final=final)
    summary["fit_s"] = round(fit_s, 4)
    summary.update(extra or {})
    summary["doctor"] = _doctor_report(run, prep, state, stopper, summary, losses, monitor)
    atomic_write_json(run.summary, summary)
    drawn.finish()
    if prep.cfg.report.enabled:
        from trainwell.viz.build import build_report

        build_report(run.path, figures=())  # the page: after the figures, which it embeds and lists
    return summary


def _doctor_report(run: RunDir, prep: Prepared, state, stopper, summary: dict, losses: list[float],
                   monitor: list[Verdict]) -> list[dict]:
    """Pre-flight (saved at the start), monitor and post-flight verdicts, each tagged with its phase."""
    pre = json.loads((run.path / "preflight.json").read_text()) if (run.path / "preflight.json").exists() else []
    post = postflight(prep, losses, state, summary["final"], summary["stop"]["overfit_epoch"])
    return diagnosis.reconcile([{**v, "phase": "pre"} for v in pre]
                               + [{**v.as_dict(), "phase": "monitor"} for v in monitor]
                               + [{**v.as_dict(), "phase": "post"} for v in post])


def final_metrics(prep: Prepared) -> dict:
    """The final loss and accuracy of ``prep.model`` on each split (None for an empty split), as summary.json's
    ``final`` holds them."""
    splits, loss_fn = prep.splits, loss_function(prep.cfg.train.loss)
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
    return final


def _summary(prep: Prepared, state, stopper, best: int | None, wall: float, final: dict | None = None) -> dict:
    cfg, splits = prep.cfg, prep.splits
    final = final_metrics(prep) if final is None else final
    where = next((p.device for p in prep.model.parameters()), prep.device)
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
        "stop_reason": state.stop or (f"completed {epochs_text(cfg.train.epochs)}, but the loss "
                                      f"{history[-1]['train_loss']:.4g} ended above {div.factor:g} x the untrained "
                                      f"model's {div.expected:.4g}: a failed run" if ended_far_above
                                      else f"completed {epochs_text(cfg.train.epochs)}"),
        "failed": stopper.failure is not None or bool(history and not math.isfinite(history[-1]["train_loss"]))
        or ended_far_above,
        "best_epoch": best,
        "monitor": (monitored_name(cfg.train.monitor, history[-1]) if history else None) or cfg.train.monitor,
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
        "classes": splits.meta.num_classes,
        "class_names": splits.meta.notes.get("class_names"),  # text labels' names by class id (data.name = "csv")
        "label_notes": splits.meta.notes.get("label_notes") or [],  # a data file's labels: 1-based, test-only
        "human_error": splits.meta.human_error,
    }
