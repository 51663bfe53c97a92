"""Run a sweep's members on a Ray cluster (``trainwell sweep ... --backend ray``): Ray schedules, trainwell trains.

The members are grouped as a local sweep groups them: a sweep that trains as one vmapped population is split into
one population per available worker (contiguous slices of the members, each a Ray task), any other sweep runs one
member per task. Each task declares what it needs (``num_cpus`` = ``train.threads`` or 1, ``num_gpus`` = 1 when the
members train on CUDA) and writes its members' run directories ``member-<i>/`` with the pipeline's own writer, so
the sweep folder (results.csv, summary.json, metrics.jsonl) is the one a local sweep writes. A task that fails is
retried once (Ray's ``max_retries``/``retry_exceptions``), then its members are reported as failed with the error,
never dropped. Ctrl-C cancels the tasks still pending or running.

The sweep folder must be visible to every node (a shared filesystem) and trainwell installed on every node; on one
machine (``ray.init()`` started here, or ``--address auto`` for a running local cluster) both hold already.

Ray is optional: ``pip install 'trainwell[ray]'``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from trainwell.config import Config
from trainwell.errors import TrainwellError

INSTALL_HINT = "--backend ray needs Ray, which is not installed: pip install 'trainwell[ray]'"
RETRIES = 1  # a failed task runs once more, then its members are reported as failed


def require_ray():
    """The ``ray`` module, or a one-line :class:`TrainwellError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TrainwellError(INSTALL_HINT) from None
    return ray


def train_group(configs: list[dict], dirs: list[str], home: str, population: bool, resume: bool) -> dict:
    """One Ray task: train ``configs`` (as one population, or one after another) into ``dirs``; return each
    member's summary and metrics history, and the checks a population skipped."""
    from trainwell.config import config_from_dict
    from trainwell.heap import keep_freed_memory
    from trainwell.pipeline import fit, fit_population
    from trainwell.rundir import RunDir, read_jsonl

    keep_freed_memory()  # a training step's tensors reuse the last step's memory

    cfgs = [config_from_dict(c) for c in configs]
    skipped: list[str] = []
    if population:
        res = fit_population(cfgs, out=home, member_dirs=dirs, resume=resume and RunDir(home).last.exists(),
                             quiet=True, force=True)  # the sweep's claimed folder
        summaries, skipped = [r.summary for r in res.members], res.skipped
    else:
        summaries = []
        for c, d in zip(cfgs, dirs, strict=True):
            run = RunDir(d)
            if resume and run.summary.exists():
                summaries.append(run.read_summary())
            elif resume and run.last.exists():
                summaries.append(fit(c, resume=d, quiet=True).summary)
            else:
                summaries.append(fit(c, out=d, force=True, quiet=True).summary)
    return {"summaries": summaries, "histories": [read_jsonl(RunDir(d).metrics) for d in dirs], "skipped": skipped}


def _groups(size: int, slots: int, population: bool) -> list[list[int]]:
    """Member indices per task: contiguous, nearly equal slices for populations, one member each otherwise."""
    if not population:
        return [[m] for m in range(size)]
    k = max(1, min(size, slots))
    bounds = [round(i * size / k) for i in range(k + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(k)]


def _needs(cfg: Config, cluster: dict) -> dict:
    threads = cfg.train.threads if isinstance(cfg.train.threads, int) and cfg.train.threads > 0 else 1
    gpu = cfg.train.device == "cuda" or (cfg.train.device == "auto" and cluster.get("GPU", 0) > 0)
    return {"num_cpus": threads, "num_gpus": 1 if gpu else 0}


@contextlib.contextmanager
def session(address: str | None = None, quiet: bool = True):
    """Ray, initialized for the duration: a Ray already initialized in this process is used as it is; otherwise
    connect to ``address`` (``auto`` or ``HOST:PORT``) or ``RAY_ADDRESS``, or start a fresh local instance, and shut
    it down afterwards."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"address": address} if address else {}
    if not address and not os.environ.get("RAY_ADDRESS"):
        # a fresh instance for this command, not whatever cluster this machine ran last (Ray's default)
        kwargs.update(address="local", include_dashboard=False)
    kwargs.update(logging_level="ERROR", log_to_driver=not quiet)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise TrainwellError(f"--address {address or 'local'}: could not connect to or start Ray: "
                             f"{' '.join(str(exc).split())}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def map_tasks(ray, fn: Callable, calls: list[tuple], needs: dict, on_done: Callable[[int, object], None]) -> None:
    """Run ``fn(*calls[i])`` as Ray tasks with resources ``needs``, each retried once on failure; call
    ``on_done(i, value)`` as each finishes, with an ``Exception`` as the value when it failed twice. Ctrl-C cancels
    the tasks not finished."""
    task = ray.remote(fn).options(max_retries=RETRIES, retry_exceptions=True, **needs)
    pending = {task.remote(*args): i for i, args in enumerate(calls)}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                value = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001  (a task's own error or a lost worker, after its retry)
                value = getattr(exc, "cause", None) or exc
                if not isinstance(value, Exception):
                    value = exc
            on_done(i, value)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def error_text(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:400] or type(exc).__name__
    return f"{type(exc).__name__}: {message} (after {RETRIES + 1} attempts)"


def run(combos: list[tuple[dict, Config]], out: Path, *, population: bool, address: str | None = None,
        quiet: bool = True, resume: bool = False) -> dict:
    """Train ``combos`` as Ray tasks and wait for them.

    Args:
        population: the members may train as vmapped populations (one per task).
        address: a running cluster (``auto`` or ``HOST:PORT``); None connects to ``RAY_ADDRESS`` if set, or starts
            a local instance for this sweep. A Ray already initialized in this process is used as it is.

    Returns:
        ``{"results": [per member: {"summary", "history"} or {"error"}], "skipped": [...], "tasks": n}``.
    """
    out = Path(out).resolve()
    with session(address, quiet) as ray:
        cluster = ray.cluster_resources()
        needs = _needs(combos[0][1], cluster)
        slots = int(cluster.get("CPU", 1) // max(needs["num_cpus"], 1))
        groups = _groups(len(combos), slots, population)
        calls = [([combos[m][1].to_dict() for m in members], [str(out / f"member-{m}") for m in members],
                  str(out / f"group-{g}" if population else out), population, resume)
                 for g, members in enumerate(groups)]
        results: list[dict | None] = [None] * len(combos)
        skipped: set[str] = set()

        def done(g: int, value) -> None:
            members = groups[g]
            if isinstance(value, Exception):
                for m in members:
                    results[m] = {"error": error_text(value)}
            else:
                for m, summary, history in zip(members, value["summaries"], value["histories"], strict=True):
                    results[m] = {"summary": summary, "history": history}
                skipped.update(value["skipped"])
            if not quiet:
                which = f"member {members[0]}" if len(members) == 1 else f"members {members[0]}-{members[-1]}"
                print(f"ray: {which} finished", file=sys.stderr, flush=True)

        map_tasks(ray, train_group, calls, needs, done)
    return {"results": results, "skipped": sorted(skipped), "tasks": len(groups)}


__all__ = ["INSTALL_HINT", "error_text", "map_tasks", "require_ray", "run", "session", "train_group"]
