"""trainwell's figures in a user's own program: no import or figure changes the matplotlib backend."""

import pytest

BACKEND_SCRIPT = r"""
import importlib, pkgutil, sys
import matplotlib
matplotlib.use("svg")  # the user's choice: not Agg, so a switch would show
import trainwell
for info in pkgutil.walk_packages(trainwell.__path__, "trainwell."):
    if info.name != "trainwell.__main__":
        importlib.import_module(info.name)
from pathlib import Path
import torch
from trainwell.cnn import filters
from trainwell.viz import plots
out = Path(sys.argv[1])
plots.learning_curves([{"epoch": 0, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.1, "val_acc": 0.4}],
                      out / "curves.png")
plots.first_layer_weights(torch.nn.Linear(16, 4), (1, 4, 4), out / "weights.png")
filters.figure({"noise": torch.rand(16, 16)}, out / "filters.png")
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_no_trainwell_import_or_figure_changes_the_matplotlib_backend(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", BACKEND_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "False"]  # backend kept, pyplot never imported
    for name in ("curves.png", "weights.png", "filters.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_histograms_of_a_snapshot_with_no_finite_value_say_so_instead_of_failing(tmp_path):
    """A diverged run's last snapshot holds NaN everywhere: the monitor writes empty histograms (lo = hi = 0, no
    counts), and the figure names them instead of dividing by their zero bins."""
    from trainwell.viz import plots

    nan_layer = {"kind": "ReLU", "nonfinite": 1.0, "mean": None, "std": None, "hist": {"lo": 0.0, "hi": 0.0,
                 "counts": []}, "grad_hist": {"lo": 0.0, "hi": 0.0, "counts": []}, "grad_nonfinite": 1.0}
    healthy = {"kind": "Tanh", "hist": {"lo": -1.0, "hi": 1.0, "counts": [3, 5, 2]}}
    records = [{"step": 36, "activations": {"1": nan_layer, "3": healthy}}]
    path = plots.monitor_histograms(records, tmp_path / "histograms.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # ~4.5 s: a whole fit that diverges
def test_a_fit_whose_loss_turns_nan_ends_with_exit_1_and_its_summary_not_a_traceback(workdir, capsys):
    import json

    from trainwell.cli import main

    code = main(["fit", "--set", "optim.lr=1e9", "--set", "train.epochs=1", "--set", "doctor.preflight=false",
                 "--out", "diverged", "--quiet"])  # the default CNN: its activations turn NaN in the first epoch
    assert code == 1
    summary = json.loads((workdir / "diverged" / "summary.json").read_text())
    assert summary["failed"] is True and summary["stop_reason"].startswith("non-finite loss")
    assert (workdir / "diverged" / "figures" / "histograms.png").is_file()
    assert "Traceback" not in capsys.readouterr().err
