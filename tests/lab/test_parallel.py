"""``trainwell lab run --jobs N``: experiments in worker processes give the same verdicts as one after another,
and a call that raises or a worker that dies is reported, not lost."""

import math
import os

import pytest

from trainwell.errors import ParameterError
from trainwell.lab import parallel, runner


def test_jobs_must_be_a_positive_integer_and_local():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="jobs"):
            runner.run_lab(["neocognitron"], "unused", quick=True, jobs=bad)
    with pytest.raises(ParameterError, match="local backend"):
        runner.run_lab(["neocognitron"], "unused", quick=True, jobs=2, backend="ray")


def test_worker_threads_share_this_process_threads(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert [parallel.worker_threads(j) for j in (1, 2, 3, 16)] == [8, 4, 2, 1]


@pytest.mark.slow
def test_results_errors_and_dead_workers_come_back_in_any_order():
    got = {}
    parallel.map_processes(math.sqrt, [(4.0,), (-1.0,), (9.0,)], 2, [2, 1, 0], lambda i, v: got.__setitem__(i, v))
    assert got[0] == 2.0 and got[2] == 3.0 and isinstance(got[1], ValueError)
    dead = {}
    parallel.map_processes(os._exit, [(3,)], 1, [0], lambda i, v: dead.__setitem__(i, v))
    assert isinstance(dead[0], Exception)  # BrokenProcessPool: the worker died


@pytest.mark.slow
def test_two_workers_give_the_verdicts_of_one_process(tmp_path):
    names = ["filters-and-equivariance", "neocognitron", "init-symmetry-and-scale"]
    one = runner.run_lab(names, tmp_path / "one", quick=True)
    two = runner.run_lab(names, tmp_path / "two", quick=True, jobs=2)
    assert [s["name"] for s in two] == names  # in the order asked, whatever order they finished in
    for a, b in zip(one, two, strict=True):
        assert a["verdict"]["status"] == b["verdict"]["status"]
        ca, cb = a["verdict"]["evidence"]["criteria"], b["verdict"]["evidence"]["criteria"]
        assert [c["status"] for c in ca] == [c["status"] for c in cb]
        for x, y in zip(ca, cb, strict=True):
            if isinstance(x["effect"], float):
                assert y["effect"] == pytest.approx(x["effect"], rel=1e-4, abs=1e-6), x["name"]
        assert (tmp_path / "two" / a["name"] / "summary.json").is_file()
    assert (tmp_path / "two" / "index.json").is_file()


@pytest.mark.slow  # two spawned workers and a signal to this process: kept out of the parallel fast set
@pytest.mark.skipif(not hasattr(os, "setpgrp"), reason="process groups are POSIX")
def test_ctrl_c_reaches_the_parent_alone_which_kills_the_running_workers():
    """A terminal's Ctrl-C goes to its foreground process group: workers in that group each printed a
    KeyboardInterrupt traceback or a fit's "finishing this epoch" after the lab had said it stopped. They run in
    groups of their own; the parent's KeyboardInterrupt kills them, without waiting for their experiments."""
    import multiprocessing
    import signal
    import threading
    import time

    before = set(multiprocessing.active_children())
    groups: list[int] = []

    def interrupt_once_the_workers_run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = set(multiprocessing.active_children()) - before
            own = [os.getpgid(w.pid) for w in workers if w.pid and os.getpgid(w.pid) != os.getpgid(0)]
            if len(own) == 2:
                groups.extend(own)
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends this process's group

    threading.Thread(target=interrupt_once_the_workers_run, daemon=True).start()
    tic = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        parallel.map_processes(time.sleep, [(120,), (120,)], 2, [0, 1], lambda i, v: None)
    assert len(groups) == 2 and os.getpgid(0) not in groups  # the workers were out of this process's group
    for _ in range(100):  # killed: gone within a moment, not after their two minutes
        if not set(multiprocessing.active_children()) - before:
            break
        time.sleep(0.05)
    assert not set(multiprocessing.active_children()) - before and time.monotonic() - tic < 60
