"""Where the wall time of the default `trainwell fit` goes, against its training time (target: process <= 1.5x).

Runs `trainwell fit --quiet` in a fresh process ``--reps`` times and reports, per run: the process wall (Python
start, imports, everything), the in-process `pipeline.fit` wall, the training wall (`Trainer.fit`) and the
parts around it (imports, optimizer construction, pre-flight checks, live and final report, final evaluation,
the figures: drawn here before the drawing process existed, waited for since), then the medians of both ratios.

    python benchmarks/fit_wall.py --reps 3 [--cold]

trainwell's modules are byte-compiled first (``compileall`` into their ``__pycache__``), as an installed package
has them: pip compiles a package when it installs it, and Python writes the bytecode of an editable install the
first time it imports it. With ``PYTHONDONTWRITEBYTECODE`` set and no bytecode, every process would compile
trainwell's ~260 modules again (~0.25 s here); ``--cold`` measures that case (nothing compiled first).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
try:  # as `trainwell fit` does, before torch is imported: the figures' drawing process
    from trainwell.viz import figure_process
    figure_process.start()
except ImportError:  # a commit before it: every figure is drawn in this process
    figure_process = None
import trainwell.cli
if hasattr(trainwell.cli, "_import_pipeline"):  # as `trainwell fit` imports it, where the measured commit does
    trainwell.cli._import_pipeline()
import trainwell.pipeline as P
import trainwell.pipeline.build, trainwell.pipeline.fit, trainwell.pipeline.write, trainwell.viz.build
from trainwell.viz import report
from trainwell.train import trainer as T
from trainwell.config import Config
parts = {"imports": time.perf_counter() - t0}
OWNERS = [P, sys.modules["trainwell.pipeline.build"], sys.modules["trainwell.pipeline.fit"],
          sys.modules["trainwell.pipeline.write"], sys.modules["trainwell.viz.build"], report]
if figure_process is None:
    from trainwell.viz import plots
    OWNERS.append(plots)

def timed(name, label, owners=None):
    # time every call of name wherever a module holds it (the pipeline imports its parts by name)
    found = [o for o in (owners or OWNERS) if hasattr(o, name)]
    if not found:
        raise SystemExit(f"fit_wall: no module holds {name!r}: update this benchmark")
    original = getattr(found[0], name)
    def wrapper(*args, **kwargs):
        tic = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            parts[label] = parts.get(label, 0.0) + time.perf_counter() - tic
    for o in found:
        if getattr(o, name) is original:
            setattr(o, name, wrapper)

timed("prepare", "data and model")
timed("_training_parts", "optimizer, schedule")
timed("preflight", "pre-flight checks")
timed("fit", "training", [T.Trainer])
timed("_summary", "final evaluation")
if figure_process is None:
    timed("first_layer_weights", "first-layer figure")
    timed("build_fit_report", "report (live rewrites + final with PNGs)")
else:
    timed("build_fit_report", "report pages (live rewrites + final)")
    timed("finish", "figures (waiting for the drawing process)", [figure_process.Figures])
tic = time.perf_counter()
result = P.fit(Config(), out=sys.argv[1], force=True, quiet=True)
parts["pipeline.fit"] = time.perf_counter() - tic
parts["test_acc"] = result.summary["final"]["test_acc"]
if figure_process is not None:
    figure_process.stop()  # as `trainwell fit` does before it exits
print(json.dumps(parts))
if hasattr(trainwell.cli, "run"):  # exit as the `trainwell` program does, where the measured commit has run()
    import gc
    gc.freeze()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cold", action="store_true",
                        help="do not byte-compile trainwell first (each process compiles what it imports, unless "
                             "Python may write bytecode)")
    args = parser.parse_args()
    if not args.cold:
        package = importlib.util.find_spec("trainwell").submodule_search_locations[0]
        compileall.compile_dir(package, quiet=1)
        print(f"trainwell byte-compiled ({package})")
    ratios_process, ratios_fit = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            tic = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, os.path.join(tmp, f"run{rep}")], check=True,
                                 capture_output=True, text=True).stdout
            process = time.perf_counter() - tic
            parts = json.loads(out.strip().splitlines()[-1])
            train = parts["training"]
            ratios_process.append(process / train)
            ratios_fit.append(parts["pipeline.fit"] / train)
            print(f"run {rep + 1}: process {process:.2f} s, pipeline.fit {parts['pipeline.fit']:.2f} s, training "
                  f"{train:.2f} s -> process/training {ratios_process[-1]:.2f}, fit/training {ratios_fit[-1]:.2f}"
                  f" (test acc {parts['test_acc']:.2%})")
            for key, value in parts.items():
                if key not in ("training", "pipeline.fit", "test_acc"):
                    print(f"    {key}: {value:.2f} s")
    print(f"median process/training {statistics.median(ratios_process):.2f}, "
          f"median pipeline.fit/training {statistics.median(ratios_fit):.2f} (target: process <= 1.5)")


if __name__ == "__main__":
    main()
