"""Run lab experiments into a results tree and write its index page.

Layout of ``out``::

    index.html                       every experiment: claim, verdict of every seed, control, time, its page
    index.json                       the same as data
    <name>/summary.json              name, claim, size, seeds, config, verdict (overall), per-seed verdicts, wall_s
    <name>/result.json               each seed's result (plain data)
    <name>/report.html               the experiment's page (trainwell.lab.pages)
    <name>/figures/<figure>.png      the first seed's figures; <figure>_seed<k>.png those of seed k
    <name>/runs/seed<k>/...          the run directories of the trainings behind it

An experiment that raises is recorded with status ``error`` (and its traceback) and the others go on. With
several seeds the verdict is computed per seed; the overall status is the common one, or ``unstable``.

``out`` is claimed like a fit's folder (:meth:`trainwell.runclaim.Claim.reuse`): marked ``lab`` and locked while
a lab runs in it (a second lab run into it is refused), a non-empty folder that is not a lab folder is refused,
and re-running into a lab folder rewrites only the files of the experiments it runs. With ``resume`` an
experiment's summary.json is reused only if every field is valid (:func:`summary_problem`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

import trainwell
from trainwell import manifest
from trainwell.errors import ParameterError, TrainwellError
from trainwell.heap import keep_freed_memory
from trainwell.lab import base, pages, registry
from trainwell.lab.index_page import write_index
from trainwell.lab.summaries import (  # noqa: F401
    FIGURE,
    STATUSES,
    _reusable,
    _reusable_any,
    figure_file,
    shown,
    summary_problem,
)
from trainwell.manifest import record
from trainwell.runclaim import Claim
from trainwell.rundir import atomic_write_json, to_json


def _save_figures(figures: dict, folder: Path, suffix: str = "") -> list[str]:
    """Save ``figures`` as ``folder/<name><suffix>.png``; return their paths as the summary lists them."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, fig in figures.items():
        path = folder / f"{name}{suffix}.png"
        fig.savefig(path, dpi=90)
        names.append(f"figures/{path.name}")
    return names


def size_limited(verdict: dict, quick: bool, decides: bool = True) -> dict:
    """The verdict as the quick size may state it: a quick run that cannot decide says so.

    ``decides=False`` (an experiment's ``QUICK_DECIDES``) marks a quick size too small to show the effect either
    way (measured, and said where it is set): every quick verdict is then inconclusive (quick size), and the
    status the numbers gave is kept as ``quick_status``.

    An inconclusive verdict at quick size gets ``note: "quick size"`` (shown "inconclusive (quick size)"). A fail
    that no interval decided (an experiment whose verdict is not an effect with an interval, see
    :func:`trainwell.lab.base.decide`) is, at quick size, not evidence against the claim but of a size too small
    to show it: it becomes inconclusive (quick size), and the undecided status is kept as ``quick_status``."""
    if not quick or verdict.get("status") not in ("pass", "fail", "inconclusive"):
        return verdict
    if verdict["status"] == "pass" and decides:
        return verdict
    v = dict(verdict)
    if v["status"] != "inconclusive" and not decides:
        v["quick_status"] = v["status"]
        v["status"] = "inconclusive"
    if v["status"] == "fail" and not v.get("decided"):
        v["quick_status"] = "fail"
        v["status"] = "inconclusive"
    if v["status"] == "inconclusive":
        v["note"] = "quick size"
    return v


def has_control(mod) -> bool:
    """Whether experiment module ``mod`` declares its control (``CONTROL`` text and a ``Config.control`` flag)."""
    from dataclasses import fields

    return isinstance(getattr(mod, "CONTROL", None), str) and "control" in {f.name for f in fields(mod.Config)}


@contextlib.contextmanager
def flushed_denormals():
    """Subnormal floats (``|x| < 1.2e-38`` in float32) read and written as zero while an experiment runs (the
    CPU's flush-to-zero and denormals-are-zero modes, :func:`torch.set_flush_denormal`; TensorFlow sets the same
    modes in its CPU threads). x86 CPUs compute on subnormals tens of times slower, and the lab makes them on
    purpose: a 30-layer net with Xavier's initialization or a tiny-init net back-propagates gradients that vanish
    into them. Values that small change no parameter they are added to (a float32 weight of 1e-3 absorbs anything
    below ~1e-10), so the evidence is the same (RESULTS section 30); afterwards the modes are as they were (off,
    unless the caller had switched them on)."""
    # torch has no getter for the modes: with them on, a subnormal times 1 reads as 0
    was_on = (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0
    on = torch.set_flush_denormal(True)
    try:
        yield on
    finally:
        if on and not was_on:
            torch.set_flush_denormal(False)


def run_one(name: str, out: Path, quick: bool, seeds: int, log=None, seed: int | None = None,
            control: bool = False) -> dict:
    """Run experiment ``name`` for ``seeds`` seeds (from ``seed``, default the config's) into ``out/name`` (its
    control, the claim made false on purpose, into ``out/name/control``); return its summary (never raises).

    A run in which every seed ended in an error does not replace an earlier valid result: the earlier
    summary.json, result.json and figures stay, and the error is written to ``error.json`` beside them."""
    keep_freed_memory()  # also in a worker process or a Ray task (trainwell.heap)
    mod = registry.get(name)
    folder = out / name / "control" if control else out / name
    folder.mkdir(parents=True, exist_ok=True)
    cfg0 = mod.Config.quick() if quick else mod.Config()
    if seed is not None:
        cfg0 = replace(cfg0, seed=seed)
    if control:
        cfg0 = replace(cfg0, control=True)
    per_seed, results, figures = [], [], []
    tic = time.perf_counter()
    for k in range(seeds):
        cfg = replace(cfg0, seed=cfg0.seed + k)
        t, seed_figures = time.perf_counter(), []
        try:
            with base.member_log(log), flushed_denormals():
                result = json.loads(to_json(mod.run(cfg, workdir=folder / "runs" / f"seed{cfg.seed}")))
            v = size_limited(mod.verdict(result), quick, getattr(mod, "QUICK_DECIDES", True))
            suffix = "" if k == 0 else f"_seed{cfg.seed}"  # the first seed's keep their plain names
            seed_figures = _save_figures(mod.plot(result), folder / "figures_new", suffix)
            figures += seed_figures
            results.append({"seed": cfg.seed, "result": result})
        except Exception as exc:  # an experiment's failure is data: record it, let the others run
            v = {"claim": mod.CLAIM, "status": "error", "evidence": {"error": f"{type(exc).__name__}: {exc}"},
                 "threshold": "", "traceback": traceback.format_exc()}
        per_seed.append({"seed": cfg.seed, "verdict": v, "wall_s": round(time.perf_counter() - t, 3),
                         "figures": seed_figures})
        if log is not None:
            log(f"  {name}{' control' if control else ''} seed {cfg.seed}: {shown(v)} "
                f"({time.perf_counter() - t:.1f} s)")
    status = base.combine([p["verdict"]["status"] for p in per_seed])
    first = per_seed[0]["verdict"]
    summary = {
        "name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "size": "quick" if quick else "default",
        "seed": cfg0.seed, "seeds": [p["seed"] for p in per_seed], "config": asdict(cfg0),
        "verdict": {"claim": mod.CLAIM, "status": status, "evidence": first["evidence"],
                    "threshold": first.get("threshold", "")},
        "literature": getattr(mod, "LITERATURE", None), "per_seed": per_seed, "figures": [],
        "wall_s": round(time.perf_counter() - tic, 3),
        "expected_s": mod.EXPECTED_S["quick" if quick else "default"],
        "trainwell_version": trainwell.__version__, "torch_version": torch.__version__,
    }
    if all(p["verdict"].get("note") == "quick size" for p in per_seed) and status == "inconclusive":
        summary["verdict"]["note"] = "quick size"
    if control:
        summary["control"] = mod.CONTROL
    if all(p["verdict"]["status"] == "error" for p in per_seed) and _reusable_any(folder):
        atomic_write_json(folder / "error.json", summary)  # the earlier result stays: only a result replaces one
        if log is not None:
            log(f"  {name}: every seed ended in an error; the earlier result in {folder} is kept, the error is in "
                f"{folder / 'error.json'}")
        return summary
    _replace_figures(folder, figures)
    summary["figures"] = per_seed[0]["figures"]  # the first seed's (each seed lists its own in per_seed)
    atomic_write_json(folder / "result.json", results)
    atomic_write_json(folder / "summary.json", summary)
    with contextlib.suppress(FileNotFoundError):
        (folder / "error.json").unlink()
    return summary


def exit_code(summaries: list[dict], control: bool = False) -> int:
    """The lab command's exit status: 1 when an experiment crashed or any seed's verdict is a fail (at quick size
    only a fail that an interval decided stays a fail, :func:`size_limited`), else 0. For controls, 1 when any
    control passed (a verdict that survives the removal of what it tests) or crashed."""
    def statuses(s):
        return [p["verdict"]["status"] for p in s.get("per_seed", [])] or [s["verdict"]["status"]]

    bad = ("pass", "error") if control else ("fail", "error")
    return 1 if any(st in bad for s in summaries for st in statuses(s)) else 0


def _replace_figures(folder: Path, figures: list[str]) -> None:
    """Move the new figures (written to ``figures_new/``) into ``figures/``, dropping the earlier run's: only the
    PNGs trainwell wrote there (in the lab folder's manifest, or listed by the earlier summary.json) are removed;
    a file you added to ``figures/`` is kept unless a new figure has its name."""
    new, old = folder / "figures_new", folder / "figures"
    if old.is_dir() and not old.is_symlink():
        for f in _written_figures(folder):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
    old.mkdir(exist_ok=True)
    if new.is_dir():
        for f in new.iterdir():
            os.replace(f, old / f.name)
            record(old / f.name)
        new.rmdir()


def _written_figures(folder: Path) -> list[Path]:
    """The files in ``folder/figures`` that an earlier lab run wrote: those its manifest records (see
    :mod:`trainwell.manifest`) and those the earlier summary.json lists as its figures."""
    figures = folder / "figures"
    names: set[str] = set()
    root = manifest.run_root(folder)
    entries = manifest.recorded(root) if root is not None else None
    if root is not None and entries:
        with contextlib.suppress(ValueError):  # figures/ outside the lab folder: nothing of it is in its manifest
            prefix = figures.resolve().relative_to(root.resolve()).as_posix() + "/"
            names |= {e[len(prefix):] for e in entries if e.startswith(prefix) and "/" not in e[len(prefix):]}
    try:
        earlier = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        listed = [earlier.get("figures", [])] + [p.get("figures", []) for p in earlier.get("per_seed", [])
                                                  if isinstance(p, dict)]
        names |= {rel.split("/", 1)[1] for group in listed if isinstance(group, list) for rel in group
                  if isinstance(rel, str) and FIGURE.fullmatch(rel) and ".." not in rel}
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return [figures / n for n in sorted(names) if n and (figures / n).is_file() and not (figures / n).is_symlink()]


def run_lab(names: list[str], out: str | Path, *, quick: bool = False, seeds: int = 1, resume: bool = False,
            log=None, seed: int | None = None, backend: str = "local", address: str | None = None,
            control: bool = False, jobs: int = 1) -> list[dict]:
    """Run ``names`` in order into ``out``; with ``resume`` keep finished experiments of the same size and seeds.

    With ``control`` each experiment's control runs instead (the claim made false on purpose, into
    ``out/NAME/control``); its verdict should never be pass. An experiment that declares no control is refused
    before anything runs.

    Returns one summary per experiment and writes ``out/index.html`` and ``out/index.json`` after each one, so an
    interrupted lab leaves a valid index of what finished. ``backend = "ray"`` runs each experiment as a Ray task
    (``address``: a running cluster; see :mod:`trainwell.ray_backend`); the results tree is the same. ``jobs`` > 1
    runs that many experiments at a time in worker processes on this machine (:mod:`trainwell.lab.parallel`).
    """
    if seeds < 1:
        raise ParameterError("seeds", seeds, "is not allowed: use an integer >= 1")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParameterError("jobs", jobs, "is not allowed: use an integer >= 1 (experiments run at a time)")
    if jobs > 1 and backend != "local":
        raise ParameterError("jobs", jobs, "runs worker processes on this machine: use it with the local backend "
                             "(Ray schedules its own tasks)")
    if backend not in ("local", "ray"):
        raise ParameterError("backend", backend, "is not allowed: use local or ray")
    if address is not None and backend != "ray":
        raise ParameterError("address", address, "names a Ray cluster: use it with the ray backend")
    for name in names:
        mod = registry.get(name)  # unknown names fail before anything runs
        if control and not has_control(mod):
            raise TrainwellError(f"experiment {name!r} declares no control yet: control runs "
                             f"{', '.join(n for n, m in registry.experiments().items() if has_control(m))}")
    if backend == "ray":
        from trainwell import ray_backend

        ray_backend.require_ray()
    claim = Claim.reuse("lab", out, adopt=_earlier_lab_folder)  # marker, lock; a foreign folder is refused
    try:
        out = claim.path
        for name in names:
            if (out / name).is_symlink() or ((out / name).exists() and not (out / name).is_dir()):
                raise TrainwellError(f"{out / name} is not a folder (a link or a file): the lab writes "
                                     f"experiment {name!r} there; move it away and run again")
        if backend == "ray" or jobs > 1:
            return _run_lab_parallel(names, out.resolve(), quick, seeds, resume, log, seed, control,
                                     address=address, jobs=jobs if backend == "local" else None)
        return _run_lab_local(names, out, quick, seeds, resume, log, seed, control)
    finally:
        claim.release()


def _earlier_lab_folder(path: Path) -> bool:
    """Whether ``path`` is a results folder written by a trainwell lab before folders were marked: its
    index.json lists experiments, and everything in it is that index or an experiment's folder."""
    try:
        index = json.loads((path / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(index, list) or not all(isinstance(s, dict) and {"name", "verdict"} <= s.keys() for s in index):
        return False
    known = set(registry.experiments())
    return all(p.name in ("index.json", "index.html") or (p.is_dir() and not p.is_symlink() and p.name in known)
               for p in path.iterdir())


def _folder(out: Path, name: str, control: bool) -> Path:
    return out / name / "control" if control else out / name


def _run_lab_local(names: list[str], out: Path, quick: bool, seeds: int, resume: bool, log,
                   seed: int | None, control: bool = False) -> list[dict]:
    summaries = []
    for i, name in enumerate(names, 1):
        old = _reusable(_folder(out, name, control), quick, seeds, seed, log, name) if resume else None
        if old is not None:
            if log is not None:
                log(f"[{i}/{len(names)}] {name}: kept from an earlier run ({old['verdict']['status']})")
            summaries.append(old)
        else:
            if log is not None:
                log(f"[{i}/{len(names)}] {name} ({'quick' if quick else 'default'}, {seeds} seed(s)) ...")
            summaries.append(run_one(name, out, quick, seeds, log, seed, control))
            if log is not None:
                s = summaries[-1]
                log(f"[{i}/{len(names)}] {name}: {s['verdict']['status']} in {s['wall_s']:.1f} s")
        write_index(_index_of(summaries, out, control), out, {s["name"] for s in summaries})
    return summaries


def _index_of(summaries: list[dict], out: Path, control: bool) -> list[dict]:
    """What the index lists: every experiment with a result in ``out``, this run's first (in the order run),
    then those of earlier runs still in the folder (in the catalogue's order). An experiment is listed by its own
    result (after a control run, read from ``out``; each experiment's page shows its control beside it); one of
    which only the control is in ``out`` is listed with its claim "not run" (verdict None)."""
    entries: list[dict] = []
    seen: set[str] = set()
    if not control:
        entries = list(summaries)
        seen = {str(s["name"]) for s in summaries}
    order = {n: i for i, n in enumerate(registry.names())}
    names = [str(s["name"]) for s in summaries] if control else []
    try:
        found = sorted((p.name for p in out.iterdir() if p.is_dir() and not p.is_symlink()
                        and pages.SAFE_NAME.fullmatch(p.name)), key=lambda n: (order.get(n, len(order)), n))
    except OSError:
        found = []
    for name in [*names, *found]:
        if name in seen:
            continue
        seen.add(name)
        own = _valid_summary(out / name, name)
        if own is not None:
            entries.append(own)
            continue
        ctrl = _valid_summary(out / name / "control", name)
        if ctrl is not None:
            entries.append({"name": name, "claim": ctrl.get("claim"), "paper": ctrl.get("paper"), "size": None,
                            "seeds": [], "verdict": None, "wall_s": None, "figures": [], "per_seed": []})
    return entries


def _valid_summary(folder: Path, name: str) -> dict | None:
    """``folder/summary.json`` if it holds a valid result of experiment ``name`` (:func:`summary_problem`)."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if summary_problem(summary, name, folder) is None else None


def _error_summary(name: str, quick: bool, seed: int | None, text: str) -> dict:
    """The summary of an experiment whose task never returned one (its worker died, or a remote task failed)."""
    mod = registry.get(name)
    return {"name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "size": "quick" if quick else "default",
            "seed": seed, "seeds": [], "per_seed": [], "figures": [], "wall_s": 0.0,
            "verdict": {"claim": mod.CLAIM, "status": "error", "threshold": "", "evidence": {"error": text}}}


def _run_lab_parallel(names: list[str], out: Path, quick: bool, seeds: int, resume: bool, log, seed: int | None,
                      control: bool = False, *, address: str | None = None, jobs: int | None = None) -> list[dict]:
    """Each experiment not kept from an earlier run is a task running :func:`run_one`: a Ray task (one CPU) when
    ``jobs`` is None, else one of ``jobs`` worker processes here (:func:`trainwell.lab.parallel.map_processes`,
    longest expected first). A task that never returned a summary is recorded as an error."""
    summaries: list[dict | None] = [_reusable(_folder(out, n, control), quick, seeds, seed, log, n) if resume
                                    else None for n in names]
    todo = [i for i, s in enumerate(summaries) if s is None]
    where = "ray" if jobs is None else "worker"

    def done(i: int, value) -> None:
        name = names[todo[i]]
        if isinstance(value, Exception):
            if jobs is None:
                from trainwell import ray_backend

                text = ray_backend.error_text(value)
            else:
                text = f"{type(value).__name__}: {' '.join(str(value).split())[:400]}"
            value = _error_summary(name, quick, seed, text)
        summaries[todo[i]] = value
        if log is not None:
            finished = sum(s is not None for s in summaries)
            log(f"[{finished}/{len(names)}] {name}: {value['verdict']['status']} in {value['wall_s']:.1f} s "
                f"({where})")
        ran = [s for s in summaries if s is not None]
        write_index(_index_of(ran, out, control), out, {s["name"] for s in ran})

    calls = [(names[i], out, quick, seeds, None, seed, control) for i in todo]
    if jobs is None:
        from trainwell import ray_backend

        with ray_backend.session(address, quiet=log is None) as ray:
            ray_backend.map_tasks(ray, run_one, calls, {"num_cpus": 1}, done)
    else:
        from trainwell.lab import parallel

        size = "quick" if quick else "default"
        order = sorted(range(len(calls)), key=lambda k: -getattr(registry.CATALOG[calls[k][0]], f"{size}_s"))
        if log is not None:
            log(f"{len(calls)} experiment(s) in {min(jobs, max(1, len(calls)))} worker processes, "
                f"{parallel.worker_threads(jobs)} torch thread(s) each, longest first")
        parallel.map_processes(run_one, calls, jobs, order, done)
    write_index(_index_of(summaries, out, control), out, {s["name"] for s in summaries})
    return summaries
