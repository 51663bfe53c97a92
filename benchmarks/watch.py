"""doctor.watch overhead on a user's own loop: the default model (MNIST-1D CNN) trained by a hand-written loop,
with ``trainwell.doctor.watch(model, opt, every=50)`` and ``w.step(loss)`` per step vs the same loop bare.

Both sides start from the same weights and seed; runs are interleaved and the ratio of the medians is reported.

Usage: OMP_NUM_THREADS=1 python benchmarks/watch.py [--epochs 3] [--reps 5] [--every 50]
       OMP_NUM_THREADS=1 python -c "import watch; print(watch.script_cost(2000, 5))"   (from benchmarks/: the
       per-step cost of ``trainwell watch script.py`` against an explicit ``doctor.watch`` on the same loop)
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from trainwell import doctor, optim
from trainwell.config import load_config
from trainwell.pipeline import prepare


def run(model, cfg, x, y, epochs: int, every: int | None) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one training run; CPU time leaves out the time this process waited
    for a core the machine's other tenants held."""
    model = copy.deepcopy(model)
    opt = optim.from_config(model, cfg.optim)
    g = torch.Generator().manual_seed(0)
    bs = cfg.train.batch_size
    w = doctor.watch(model, opt, every=every) if every else None
    tic, cpu = time.perf_counter(), time.process_time()
    if w is not None:
        w.__enter__()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if w is not None:
                w.step(loss, y=y[idx])
    if w is not None:
        w.__exit__(None, None, None)
        w.report()  # the post-flight diagnosis is part of the cost
    return time.perf_counter() - tic, time.process_time() - cpu


def components(model, cfg, x, y, every: int, n: int = 40) -> tuple[float, float, float]:
    """Contention-robust parts: the fastest bare step, the fastest observed step (every=1), and the extra cost of
    an unobserved step (the loop probes' forward and optimizer hooks plus ``w.step(loss, y=y)``), which is Python
    work independent of the model: measured on a tiny MLP (a ~0.4 ms step) by :func:`python_cost`."""
    model = copy.deepcopy(model)
    opt = optim.from_config(model, cfg.optim)
    xb, yb = x[: cfg.train.batch_size], y[: cfg.train.batch_size]

    def step():
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def fastest(fn) -> float:
        best = float("inf")
        for _ in range(n):
            tic = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - tic)
        return best

    bare = fastest(step)
    with doctor.watch(model, opt, every=1) as w:
        observed = fastest(lambda: w.step(step(), y=yb))
    return bare, observed, python_cost()


def python_cost(steps: int = 2000, pairs: int = 7) -> float:
    """Seconds an unobserved watched step adds to a bare one: a tiny MLP trained ``steps`` steps bare and
    watched (every=10**9, after the three always-observed steps), ``pairs`` interleaved pairs, median of the
    per-step differences."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xb, yb = torch.randn(64, 20), torch.randint(0, 4, (64,))

    def step():
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    diffs = []
    for _ in range(pairs):
        tic = time.perf_counter()
        for _ in range(steps):
            step()
        bare = time.perf_counter() - tic
        with doctor.watch(model, opt, every=10**9) as w:
            for _ in range(3):
                w.step(step(), y=yb)
            tic = time.perf_counter()
            for _ in range(steps):
                w.step(step(), y=yb)
            watched = time.perf_counter() - tic
        diffs.append((watched - bare) / steps)
    return max(statistics.median(diffs), 0.0)


SCRIPT = """
import time
import torch
import torch.nn.functional as F
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
xb, yb = torch.randn(64, 20), torch.randint(0, 4, (64,))
def step():
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
for _ in range(4):
    step()
tic = time.perf_counter()
for _ in range(STEPS):
    step()
ELAPSED = time.perf_counter() - tic
"""


def script_cost(steps: int = 2000, pairs: int = 7) -> tuple[float, float]:
    """Seconds per step ``trainwell watch`` adds to a script left unchanged, and an explicit ``doctor.watch``
    adds to the same loop (:func:`python_cost`'s tiny MLP), ``pairs`` interleaved triples, medians: (script,
    explicit)."""
    import tempfile
    from pathlib import Path

    from trainwell.doctor.script_watch import ScriptWatch

    path = Path(tempfile.mkdtemp()) / "loop.py"
    path.write_text(SCRIPT.replace("STEPS", str(steps)))
    auto, explicit = [], []
    for _ in range(pairs):
        bare: dict = {}
        exec(compile(path.read_text(), str(path), "exec"), bare)
        runner = ScriptWatch(every=10**9)
        runner.run(str(path), [])
        auto.append((runner._globals["ELAPSED"] - bare["ELAPSED"]) / steps)
        explicit.append(python_cost(steps, 1))
    return statistics.median(auto), statistics.median(explicit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()
    cfg = load_config(None, ["train.device=cpu"])
    prep = prepare(cfg)
    x, y = prep.splits.train
    run(prep.model, cfg, x, y, 1, None)  # warm-up
    bare, watched, bare_cpu, watched_cpu = [], [], [], []
    for rep in range(args.reps):
        for out, cpu, every in ((bare, bare_cpu, None), (watched, watched_cpu, args.every)):
            wall, used = run(prep.model, cfg, x, y, args.epochs, every)
            out.append(wall)
            cpu.append(used)
        print(f"rep {rep}: bare {bare[-1]:.3f} s ({bare_cpu[-1]:.3f} s CPU), watch every {args.every} "
              f"{watched[-1]:.3f} s ({watched_cpu[-1]:.3f} s CPU)", flush=True)
    a, b = statistics.median(bare), statistics.median(watched)
    steps = args.epochs * -(-len(x) // cfg.train.batch_size)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"{cfg.model.kind} on {cfg.data.name}, {steps} steps per run")
    print(f"median bare {a:.3f} s | watched {b:.3f} s | ratio {b / a:.3f} | overhead {100 * (b / a - 1):+.1f}% "
          f"(target <= +10%)")
    lo_a, lo_b = min(bare), min(watched)  # the least disturbed run of each
    print(f"best bare {lo_a:.3f} s | watched {lo_b:.3f} s | ratio {lo_b / lo_a:.3f}")
    ca, cb = statistics.median(bare_cpu), statistics.median(watched_cpu)
    print(f"CPU time: median bare {ca:.3f} s | watched {cb:.3f} s | ratio {cb / ca:.3f} | overhead "
          f"{100 * (cb / ca - 1):+.1f}%")
    step, observed, call = components(prep.model, cfg, x, y, args.every)
    estimate = (call + (observed - step) / args.every) / step
    print(f"components (min of 40): bare step {step * 1e3:.2f} ms, observed step {observed * 1e3:.2f} ms, "
          f"unobserved step's extra {call * 1e6:.1f} us -> overhead at every={args.every}: {100 * estimate:+.1f}%")


if __name__ == "__main__":
    main()
