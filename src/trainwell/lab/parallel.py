"""Run lab experiments in worker processes on this machine (``trainwell lab run --jobs N``).

The lab's models are small: one of them keeps one core busy and gains little from a second intra-op thread, so on
a machine with several cores the experiments run side by side, one per worker process, each with its share of the
cores (``torch.get_num_threads() // jobs`` threads, at least one). Workers are started with ``spawn`` (a fresh
interpreter: no state inherited from the parent's torch) and given the longest experiments first (by their
``EXPECTED_S``), so that the last one to finish is a short one. Each experiment writes only its own folder; the
parent writes the index as results come in. Results are the same as one after another: an experiment's seeds and
trainings do not depend on which process runs it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait


def _start_worker(threads: int) -> None:
    if hasattr(os, "setpgrp"):  # out of the terminal's process group: a Ctrl-C reaches the parent alone, which
        os.setpgrp()  # stops the workers (each would print its own KeyboardInterrupt or "finishing this epoch")
    import torch

    torch.set_num_threads(threads)


def worker_threads(jobs: int) -> int:
    """Torch threads per worker: this process's thread count shared by ``jobs`` workers, at least one."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def map_processes(fn: Callable, calls: list[tuple], jobs: int, order: list[int],
                  on_done: Callable[[int, object], None]) -> None:
    """Run ``fn(*calls[i])`` in ``jobs`` spawned worker processes, submitting in ``order`` (indices into
    ``calls``); call ``on_done(i, value)`` in this process as each finishes, with the ``Exception`` as the value
    when the call raised or its worker died. Ctrl-C cancels the calls not started and kills the workers (they run
    in process groups of their own, so the terminal's signal reaches this process alone)."""
    ctx = multiprocessing.get_context("spawn")
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_start_worker,
                               initargs=(worker_threads(jobs),))
    try:
        pending = {pool.submit(fn, *calls[i]): i for i in order}
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                try:
                    value = fut.result()
                except Exception as exc:  # noqa: BLE001  (the call's own error, or a worker that died)
                    value = exc
                on_done(i, value)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in set(multiprocessing.active_children()) - others:  # the experiments running: stopped now
            worker.kill()
        raise
    pool.shutdown(wait=True)
