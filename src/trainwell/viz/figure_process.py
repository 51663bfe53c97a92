"""A run's PNG figures drawn by a second Python process, while this one finishes the run.

Importing matplotlib and drawing a fit's three figures take about a second of one core after training (RESULTS
section 37): the run waited for them. ``trainwell fit`` and ``trainwell sweep`` call :func:`start` before they
import torch: the drawing process imports matplotlib (not torch) on another core while this one imports torch and
trains, then draws each run's figures (side by side, each in a child forked from it, where processes fork) while
this one evaluates the final model and writes summary.json.

The drawing is an optimisation only. Whatever goes wrong with the process — it could not start, it died, it
raised — the figure is drawn again here by the same function, which raises its own error if it has one; a figure
that the process drew is byte for byte the one this process would draw (the same functions on the same data).
Without :func:`start` (a library call from a script or a notebook) every figure is drawn here.

Messages are pickles on the process's stdin and stdout pipes: jobs ``(id, kind, arguments, working directory)``
in (each framed by its length, so that the process can wait on its stdin and its drawing children at once),
replies ``(id, traceback or None)`` out, as the jobs finish. The process ignores Ctrl-C (this process decides what an
interrupt ends) and exits on the word to end (``None``) or when its stdin closes, also when this process is killed.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import traceback
from pathlib import Path

REPLY_TIMEOUT_S = 120.0
"""After this long without any answer (a stopped or hung drawing process) the figures are drawn here; long enough
for matplotlib's first import on a new machine, which builds its font cache."""
STOP_WAIT_S = 10.0
"""Seconds the process is given to end after its figures (half that when asked to end at once) before it is
killed."""


def _draw(kind: str, arguments: dict) -> None:
    """Run one job, in either process."""
    if kind == "first_layer":
        from trainwell.viz.plots import save_first_layer

        save_first_layer(**arguments)
    elif kind == "report":
        from trainwell.viz.report import draw_figures

        draw_figures(**arguments)
    else:
        raise ValueError(f"figure job {kind!r} is not known: use 'first_layer' or 'report'")


class FigureProcess:
    """The drawing process and its two pipes; :meth:`submit` a job, :meth:`wait` for its reply.
    ``sequential``: draw one job after another even where processes fork (as elsewhere).

    Jobs are written to the pipe by a thread of their own: a job larger than the pipe's buffer (a wide first layer)
    never blocks the run, even when the process stopped reading (see :data:`REPLY_TIMEOUT_S`)."""

    def __init__(self, sequential: bool = False):
        import trainwell

        env = dict(os.environ)  # the same trainwell as this process's, however it was found
        root = str(Path(trainwell.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = "1"  # drawing needs no BLAS threads, and a process without threads forks safely
        # a session of its own: Ctrl-C in the terminal is this process's to handle, and a hung process is ended
        # with its drawing children (killpg), so that nothing is still writing a figure that is drawn here instead
        self._proc = subprocess.Popen([sys.executable, "-m", __name__, *(["--sequential"] if sequential else [])],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      start_new_session=os.name == "posix")
        self._replies: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue()
        self._answers: dict[int, str | None] = {}
        self._open: set[int] = set()  # jobs sent and not answered yet
        self._next = 0
        self._alive = True
        self._owner = os.getpid()  # a process forked from this one shares the pipes but not the threads
        threading.Thread(target=self._read, name="trainwell-figures-in", daemon=True).start()
        threading.Thread(target=self._write, name="trainwell-figures-out", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self._replies.put(pickle.load(self._proc.stdout))
        except Exception:  # noqa: BLE001 - end of the pipe (the process ended) or a torn reply: no more answers
            self._replies.put(None)

    def _write(self) -> None:
        while (frame := self._outbox.get()) is not None:
            try:
                self._proc.stdin.write(frame)
                self._proc.stdin.flush()
            except (OSError, ValueError):  # the process ended: its jobs are answered by the end of its stdout
                return
        try:
            self._proc.stdin.close()
        except OSError:
            pass

    @property
    def alive(self) -> bool:
        """Running, and this is the process that started it (a fork's copy of this object is never alive)."""
        return self._alive and os.getpid() == self._owner and self._proc.poll() is None

    def submit(self, kind: str, arguments: dict) -> int | None:
        """Send a job; its id, or None if the process cannot take it (then draw it here). Relative paths in
        ``arguments`` are read against this process's working directory, whatever the drawing process's is."""
        if not self.alive:
            return None
        job = self._next
        try:
            frame = _frame((job, kind, arguments, os.getcwd()))
        except (OSError, pickle.PicklingError, TypeError, AttributeError):  # a working directory that was
            return None  # removed, or arguments that do not pickle: drawn here
        self._next += 1
        self._open.add(job)
        self._outbox.put(frame)
        return job

    def wait(self, job: int) -> bool:
        """Whether job ``job`` was drawn there; False (draw it here) if it raised or the process stopped."""
        while job not in self._answers and self._alive:
            try:
                reply = self._replies.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                print(f"trainwell: the figure-drawing process (pid {self._proc.pid}) has not answered for "
                      f"{REPLY_TIMEOUT_S:.0f} s: drawing the figures in this process", file=sys.stderr)
                reply = None
            if reply is None:
                self.stop()
                break
            self._answers[reply[0]] = reply[1]
            self._open.discard(reply[0])
        return job in self._answers and self._answers.pop(job) is None

    def stop(self) -> None:
        """End the process and reap it. With every job answered (the usual end, or an error before the first
        figure) it is asked to end at once (SIGTERM: it may still be importing matplotlib, and nothing of it is
        needed; it cleans up as it exits). Otherwise it is told to end after the figures it is drawing, by a
        message: a process forked from this one (a DataLoader's workers) holds a copy of the pipe's end and would
        keep the pipe open. Either way it is killed, with its drawing children, if it has not ended in time."""
        if os.getpid() != self._owner:  # a forked child ending: the process is its parent's to stop
            return
        self._alive = False
        if self._open:
            self._outbox.put(_frame(None))
        else:
            self._proc.terminate()
        self._outbox.put(None)  # the writer closes the pipe after what it has left to send
        try:
            self._proc.wait(timeout=STOP_WAIT_S if self._open else STOP_WAIT_S / 2)
        except subprocess.TimeoutExpired:
            if os.name == "posix":
                os.killpg(self._proc.pid, signal.SIGKILL)
            else:
                self._proc.kill()
            self._proc.wait()


_process: FigureProcess | None = None


def start() -> None:
    """Start the drawing process for this process's runs (once; nothing if it cannot start)."""
    global _process
    if _process is not None and _process.alive:
        return
    if "RANK" in os.environ and os.environ.get("WORLD_SIZE", "1") != "1":
        return  # under torchrun only rank 0 writes a run (trainwell.train.distributed.launched): it draws in-process
    stop()  # one that died: reaped before another starts
    try:
        _process = FigureProcess()
    except OSError:
        _process = None
        return
    atexit.unregister(stop)
    atexit.register(stop)


def running() -> bool:
    """Whether a drawing process runs for this process's runs (figures added now are drawn there)."""
    return _process is not None and _process.alive


def stop() -> None:
    """End the drawing process, if one runs; later figures are drawn here."""
    global _process
    if _process is not None:
        _process.stop()
        _process = None


class Figures:
    """The figures a run asks for: sent to the drawing process as they are added, when one runs; :meth:`finish`
    waits for them and draws here every one not drawn there (all of them when no process runs)."""

    def __init__(self):
        self._jobs: list[tuple[FigureProcess | None, int | None, str, dict]] = []

    def add(self, kind: str, **arguments) -> None:
        process = _process
        job = process.submit(kind, arguments) if process is not None else None
        self._jobs.append((process, job, kind, arguments))

    def adopt(self, other: Figures) -> None:
        """Take ``other``'s jobs (sent earlier): :meth:`finish` waits for them with these."""
        self._jobs.extend(other._jobs)
        other._jobs = []

    def finish(self) -> None:
        jobs, self._jobs = self._jobs, []
        # every answer first: a figure that fails here raises only once none is still being written there
        here = [(kind, arguments) for process, job, kind, arguments in jobs
                if process is None or job is None or not process.wait(job)]
        for kind, arguments in here:
            _draw(kind, arguments)


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack(">I", len(data)) + data


def _frames(buffer: bytearray) -> list:
    """Take every complete frame (a 4-byte length, then a pickle) off the front of ``buffer``."""
    out = []
    while len(buffer) >= 4:
        size = struct.unpack(">I", buffer[:4])[0]
        if len(buffer) < 4 + size:
            break
        out.append(pickle.loads(bytes(buffer[4:4 + size])))
        del buffer[:4 + size]
    return out


def _reply(job: int, error: str | None) -> None:
    sys.__stdout__.buffer.write(pickle.dumps((job, error), protocol=pickle.HIGHEST_PROTOCOL))
    sys.__stdout__.buffer.flush()


def _attempt(kind: str, arguments: dict, cwd: str) -> str | None:
    """Run one job in the caller's working directory; its traceback if it raised, else None."""
    try:
        os.chdir(cwd)
        _draw(kind, arguments)
    except BaseException:  # noqa: BLE001 - reported; the caller draws this figure itself and sees the error
        return traceback.format_exc()
    return None


def _end(code: int = 0, *_) -> None:
    """Leave at once, after the exit handlers (matplotlib's removes the temporary config folder it made when
    MPLCONFIGDIR was not writable) and without the interpreter's teardown, which would only delay the caller."""
    atexit._run_exitfuncs()
    sys.stderr.flush()
    os._exit(code)


def _serve(sequential: bool = False) -> None:
    """The drawing process: import the figures' modules, then run jobs until stdin closes.

    Where processes fork (Linux), each job is drawn by a child forked from this process, as many at once as
    there are cores (this process has matplotlib loaded and no torch and no threads of its own: a fork is safe
    and costs milliseconds); elsewhere the jobs are drawn here one after another."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _end(0))
    sys.stdout = sys.stderr  # a print anywhere must not corrupt the replies (they go to sys.__stdout__)
    try:
        import trainwell.viz.plots  # noqa: F401 - matplotlib: the slow import, done before the first job arrives
        import trainwell.viz.report  # noqa: F401
    except BaseException:  # noqa: BLE001 - the caller draws every figure itself, and raises the same error once
        _end(1)

    stdin = sys.stdin.fileno()
    buffer = bytearray()
    if sequential or not (sys.platform == "linux" and hasattr(os, "fork")):
        while chunk := os.read(stdin, 1 << 16):
            buffer += chunk
            for job in _frames(buffer):
                if job is None:  # the word to end
                    return
                _reply(job[0], _attempt(*job[1:]))
        return
    import select

    cores = max(1, len(os.sched_getaffinity(0)))
    waiting: list[tuple] = []
    running: dict[int, tuple[int, int, bytearray]] = {}  # read end of a child's pipe -> (pid, job, its output)
    open_ = True
    while open_ or waiting or running:
        while waiting and len(running) < cores:
            job = waiting.pop(0)
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: draw, say how it went on the pipe, leave without Python's exit handlers
                os.close(read)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                error = _attempt(*job[1:])
                if error is not None:
                    os.write(write, error.encode("utf-8", "replace"))
                sys.stderr.flush()
                os._exit(0 if error is None else 1)
            os.close(write)
            running[read] = (pid, job[0], bytearray())
        ready, _, _ = select.select(([stdin] if open_ else []) + list(running), [], [])
        for fd in ready:
            if fd == stdin:
                chunk = os.read(stdin, 1 << 16)
                buffer += chunk
                jobs = _frames(buffer)
                open_ = bool(chunk) and None not in jobs  # the end of the pipe, or the word to end
                waiting.extend(job for job in jobs if job is not None)
                continue
            chunk = os.read(fd, 1 << 16)
            pid, job, output = running[fd]
            if chunk:
                output += chunk
                continue
            os.close(fd)
            del running[fd]
            status = os.waitpid(pid, 0)[1]
            failed = output.decode("utf-8", "replace") or f"the drawing child ended with status {status}"
            _reply(job, None if status == 0 else failed)


if __name__ == "__main__":
    _serve(sequential="--sequential" in sys.argv[1:])
    _end(0)
