"""Reading a user's CSV: NumPy's C parser (a table of numbers) against the csv module's rows of strings.

Writes a table shaped like Kaggle's MNIST ``train.csv`` (label first, then ``pixel0 .. pixel783``, 0..255 integers,
80% zeros) and loads it with ``load_csv`` both ways, each in its own process (its peak memory is that process's),
interleaved ``--reps`` times; prints the medians and their ratio.

Usage: python benchmarks/csv_read.py [--rows 42000] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, time
from trainwell.data import csv_file
if sys.argv[2] == "text":
    csv_file.read_numbers = lambda path, delimiter: None
tic = time.perf_counter()
x = csv_file.load_csv(sys.argv[1], label="label", shape=[28, 28])[0]
print(time.perf_counter() - tic, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, tuple(x.shape))
"""


def write_table(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
        for _ in range(rows // 1000):
            block = (rng.random((1000, 784)) < 0.2) * rng.integers(0, 256, (1000, 784))
            labels = rng.integers(0, 10, 1000)
            f.writelines(f"{k}," + ",".join(map(str, r)) + "\n" for k, r in zip(labels, block, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=42000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    results = {"numbers": [], "text": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.csv"
        write_table(path, args.rows)
        print(f"{path.stat().st_size / 1e6:.1f} MB, {args.rows:,} rows x 785 columns")
        for rep in range(args.reps):
            for how in results:
                out = subprocess.run([sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True,
                                     check=True).stdout.split()
                results[how].append((float(out[0]), float(out[1])))
                print(f"rep {rep} {how}: {float(out[0]):.2f} s, peak {float(out[1]):.0f} MB", flush=True)
    (t_num, m_num), (t_text, m_text) = ((statistics.median(v[0] for v in r), statistics.median(v[1] for v in r))
                                        for r in results.values())
    print(f"median: numbers {t_num:.2f} s / {m_num:.0f} MB, csv module {t_text:.2f} s / {m_text:.0f} MB: "
          f"{t_text / t_num:.1f}x faster, {m_text / m_num:.2f}x less peak memory")


if __name__ == "__main__":
    main()
