"""Wall time of the one-line mistakes and the static listings of the CLI, as a ratio to ``trainwell --help``.

Each command runs in a fresh interpreter (as a user types it), interleaved with ``--help``, ``--reps`` times; the
table gives medians, the ratio to ``--help``'s median, whether torch was imported and how many of the lab's
experiment modules were (read from ``sys.modules`` when the command ends).

    OMP_NUM_THREADS=1 python benchmarks/cli_latency.py --reps 3
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = [
    ["--help"],
    ["sweep", "--seeds", "0"],
    ["sweep", "--grid", "optim.lr 1e-3,3e-3"],
    ["lr-find", "--start", "10", "--end", "1e-3"],
    ["lab", "run", "capacty"],
    ["fit", "--resume", "runs/nope"],
    ["report", "NOT_A_RUN"],
    ["fit", "--set", "data.name=mnist1"],
    ["fit", "--set", "stop.patiense=3"],
    ["lab", "list"],
    ["datasets"],
]


# runs the CLI as ``python -m trainwell`` does, then reports what it imported: sys.modules is the truth
# (-X importtime logs the import statement only, not importlib.import_module, which the lab registry used)
WRAP = """
import runpy, sys
sys.argv = ["trainwell", *sys.argv[1:]]
try:
    runpy.run_module("trainwell", run_name="__main__", alter_sys=True)
finally:
    lab = [m for m in sys.modules if m.startswith("trainwell.lab.") and m.rsplit(".", 1)[1] not in
           ("registry", "base", "runner", "summaries", "pages", "index_page", "spirals_common", "probes")]
    print(f"#imported torch={int('torch' in sys.modules)} experiments={len(lab)}", file=sys.stderr)
"""


def run(args: list[str], cwd: str) -> tuple[float, int, bool, int, str]:
    """(wall seconds, exit code, whether torch was imported, how many lab experiment modules were imported, the
    last line of stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAP, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    found = re.search(r"^#imported torch=(\d) experiments=(\d+)$", proc.stderr, re.M)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("#imported")]
    return wall, proc.returncode, found.group(1) == "1", int(found.group(2)), (lines[-1] if lines else "")[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        os.makedirs(os.path.join(cwd, "NOT_A_RUN"))
        times: dict[str, list[float]] = {" ".join(c): [] for c in COMMANDS}
        info = {}
        for _ in range(args.reps):
            for c in COMMANDS:
                wall, rc, torch, lab, last = run(c, cwd)
                times[" ".join(c)].append(wall)
                info[" ".join(c)] = (rc, torch, lab, last)
    base = statistics.median(times["--help"])
    print("| command | median wall | ratio to --help | exit | torch imported | experiments imported | "
          "last line of stderr |")
    print("|---|---|---|---|---|---|---|")
    for key, values in times.items():
        rc, torch, lab, last = info[key]
        med = statistics.median(values)
        print(f"| `trainwell {key}` | {med:.2f} s | {med / base:.1f} | {rc} | {'yes' if torch else 'no'} | {lab} | "
              f"{last.replace('|', '/')} |")


if __name__ == "__main__":
    main()
