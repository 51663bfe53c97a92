"""Trainer overhead: `trainwell fit` vs a hand-written PyTorch loop, same model, data, optimizer and steps.

Both sides train the default MNIST-1D CNN (same init, same Adam + one-cycle schedule, same batch size and number
of steps, validation once per epoch). Every side builds its Adam as `fit` does (``build_optimizer``: torch's fused
implementation), so that the ratios measure the loops, not two implementations of the update. Runs are interleaved
(loop, fit, loop, fit, ...) so that machine noise hits both alike; the ratio of medians is reported, and the
median of each rep's own ratio (robust to the machine drifting between reps).

Three trainwell figures are printed:
- "bare Trainer": the library's ``Trainer(model, optimizer, schedule=...)`` with no callbacks, timed around ``fit``
  (same data order, same validation per epoch);
- "fit loop": Trainer.fit with the run's callbacks (metrics.jsonl, checkpoints every epoch), timed around it;
- "fit total": the whole `trainwell fit` job in-process: data, model, training, final evaluation, figures, report.

``--clock cpu`` times every side by the process's CPU time (``time.process_time``; one torch thread) instead of the
wall clock: time spent waiting for a core while another process holds it does not count, which on a shared
2-core machine is most of the noise between reps.

With ``--set train.compile=true`` every side compiles the model with the same mode (``train.compile_mode``; on
CUDA ``auto`` captures the step as CUDA graphs), after an uncounted warm-up run that pays the compilation.

``--breakdown`` also times every hook of the fit side's callbacks (the monitor's arming and recording, the loggers,
the checkpoint, the live report) and prints each one's share of the hand loop: a decomposition of the fit loop's
own cost that machine noise does not blur as it blurs the ratio of two whole runs.

Usage: python benchmarks/overhead.py [--epochs 20] [--reps 5] [--set key=value ...] [--no-bare] [--clock wall|cpu]
       [--breakdown]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from trainwell import optim
from trainwell.config import load_config
from trainwell.pipeline import fit, prepare
from trainwell.pipeline.fit import compile_mode
from trainwell.train.trainer import Trainer

clock = time.perf_counter  # --clock cpu: time.process_time


def _timed_fit(fit_method):
    """Trainer.fit, recording its duration on ``clock`` (the fit side's loop, timed as the other sides are)."""
    def timed(self, *args, **kwargs):
        tic = clock()
        try:
            return fit_method(self, *args, **kwargs)
        finally:
            timed.last = clock() - tic
    timed.last = None
    return timed


def _model(cfg, prep):
    """The prepared model on its device, compiled as `fit` compiles it when ``train.compile`` is on (so that the
    ratio is the loop's own cost, not compiled against eager kernels)."""
    model = prep.model.to(prep.device)
    if cfg.train.compile:
        model.compile(mode=compile_mode(cfg.train.compile_mode, prep.device))
    return model


def hand_loop(cfg) -> float:
    prep = prepare(cfg)  # same data, same model, same init, same device as fit
    (x, y), (xv, yv) = ((t.to(prep.device) for t in pair) for pair in (prep.splits.train, prep.splits.val))
    model = _model(cfg, prep)
    tic = clock()
    opt = optim.build_optimizer(model, "adam", lr=cfg.optim.lr)  # as fit builds it (fused where torch can)
    steps = cfg.train.epochs * -(-len(x) // cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.optim.lr, total_steps=steps, pct_start=0.25)
    g = torch.Generator().manual_seed(cfg.train.seed)
    for _ in range(cfg.train.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g).to(prep.device)
        for i in range(0, len(x), cfg.train.batch_size):
            idx = perm[i : i + cfg.train.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(xv), yv).item()
    return clock() - tic


def bare_trainer(cfg) -> float:
    """The library's Trainer on the same model, data, optimizer and schedule, no callbacks."""
    prep = prepare(cfg)
    model = _model(cfg, prep)
    tic = clock()
    opt = optim.build_optimizer(model, "adam", lr=cfg.optim.lr)  # as fit builds it (fused where torch can)
    spe = -(-len(prep.splits.train[0]) // cfg.train.batch_size)
    schedule = optim.build_schedule(opt, "onecycle", epochs=cfg.train.epochs, steps_per_epoch=spe,
                                    warmup_fraction=0.25)
    trainer = Trainer(model, opt, "cross_entropy", epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                      schedule=schedule, device=prep.device, seed=cfg.train.seed)
    trainer.fit(prep.splits.train, prep.splits.val)
    return clock() - tic


HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_fit_end")
callback_time: dict[str, float] = {}  # --breakdown: seconds (on ``clock``) in each callback's hooks, all reps


def _timed_callbacks(init):
    """Trainer.__init__ that wraps every hook of the fit's callbacks to add its time to ``callback_time``."""
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        for cb in self.callbacks:
            for hook in HOOKS:
                method, key = getattr(cb, hook), f"{type(cb).__name__}.{hook}"

                def timed(*a, _method=method, _key=key, **k):
                    tic = clock()
                    try:
                        return _method(*a, **k)
                    finally:
                        callback_time[_key] = callback_time.get(_key, 0.0) + clock() - tic
                setattr(cb, hook, timed)
    return wrapped


def trainwell_fit(cfg) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        tic = clock()
        fit(cfg, out=f"{tmp}/run", quiet=True)
        total = clock() - tic
    return Trainer.fit.last, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to both sides (e.g. train.checkpoint_every=1)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--no-bare", dest="bare", action="store_false", help="skip the bare Trainer side")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: time.perf_counter (default); cpu: time.process_time (waits for a core excluded)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each callback's hooks on the fit side (median per rep, in ms)")
    args = parser.parse_args()
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    Trainer.fit = _timed_fit(Trainer.fit)
    cfg = load_config(None, [f"train.epochs={args.epochs}", f"train.device={args.device}", *args.overrides])
    hand_loop(cfg)  # warm-up: imports, allocator, data cache
    trainwell_fit(cfg)
    if args.breakdown:
        Trainer.__init__ = _timed_callbacks(Trainer.__init__)
    if args.bare:
        bare_trainer(cfg)
    loops, fits, totals, bares = [], [], [], []
    for rep in range(args.reps):
        loops.append(hand_loop(cfg))
        if args.bare:
            bares.append(bare_trainer(cfg))
        f_loop, f_total = trainwell_fit(cfg)
        fits.append(f_loop)
        totals.append(f_total)
        bare = f", bare Trainer {bares[-1]:.3f} s ({bares[-1] / loops[-1]:.3f})" if args.bare else ""
        print(f"rep {rep}: hand loop {loops[-1]:.3f} s{bare}, fit loop {fits[-1]:.3f} s ({fits[-1] / loops[-1]:.3f}), "
              f"fit total {totals[-1]:.3f} s", flush=True)
    base = statistics.median(loops)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"clock {args.clock}, "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"median hand loop {base:.3f} s | fit loop {statistics.median(fits):.3f} s "
          f"(ratio {statistics.median(fits) / base:.3f}) | fit total {statistics.median(totals):.3f} s "
          f"(ratio {statistics.median(totals) / base:.3f})")
    if args.bare:
        print(f"median bare Trainer {statistics.median(bares):.3f} s (ratio {statistics.median(bares) / base:.3f}); "
              f"bare Trainer overhead: {100 * (statistics.median(bares) / base - 1):+.1f}% (target <= +2%)")
    print(f"trainer overhead: {100 * (statistics.median(fits) / base - 1):+.1f}% (target <= +3%)")
    # each rep's sides ran back to back, so a rep's ratio cancels the machine's drift between reps, which the ratio
    # of medians above does not (the hand loop's own median moves with it)
    paired = statistics.median(f / lo for f, lo in zip(fits, loops, strict=True))
    bare_paired = ""
    if args.bare:
        bare = statistics.median(b / lo for b, lo in zip(bares, loops, strict=True))
        bare_paired = f", bare Trainer {100 * (bare - 1):+.1f}%"
    print(f"median of the reps' own ratios: fit loop {100 * (paired - 1):+.1f}%{bare_paired}")
    if args.breakdown:  # the callbacks' share: summed over reps, shown per rep against the hand loop
        total = sum(callback_time.values())
        print(f"callbacks: {1e3 * total / args.reps:.1f} ms per fit = {100 * total / args.reps / base:.2f}% of the "
              f"hand loop (the monitor's observed steps themselves are in the steps, not here)")
        for key, seconds in sorted(callback_time.items(), key=lambda kv: -kv[1]):
            if seconds / args.reps >= 5e-4:
                print(f"  {key}: {1e3 * seconds / args.reps:.1f} ms ({100 * seconds / args.reps / base:.2f}%)")


if __name__ == "__main__":
    main()
