"""trainwell's pieces in a user's own code: modules, data and loops the package did not build."""

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import boring_net
from trainwell.data.labels import as_class_labels
from trainwell.nn.dropout import DropActivation, Dropout, dropout
from trainwell.train.trainer import Trainer, evaluate


@pytest.mark.parametrize(("make", "owner"), [(lambda: Dropout(p=0.2), "Dropout"),
                                             (lambda: dropout(torch.ones(3), p=0.2), "dropout"),
                                             (lambda: DropActivation(p=0.2), "DropActivation")])
def test_torchs_p_is_refused_in_one_line_that_gives_keep_prob(make, owner):
    with pytest.raises(TypeError) as err:
        make()
    assert str(err.value) == f"trainwell's {owner} takes keep_prob (= 1 - torch's p): keep_prob=0.8"


def test_dropout_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"keep_prob=1.5 is not allowed"):
        Dropout(keep_prob=1.5)
    with pytest.raises(ValueError, match=r"mode='gaussian' is not allowed"):
        Dropout(0.5, mode="gaussian")
    with pytest.raises(TypeError, match=r"keep_prob='0.5'"):
        Dropout("0.5")


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int16, torch.int8, torch.int64])
def test_integer_labels_of_any_dtype_train_like_int64(dtype):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)

    def run(labels):
        torch.manual_seed(0)
        model = boring_net(5, 8, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        state = Trainer(model, opt, epochs=2, batch_size=16, device="cpu").fit((x, labels), (x, labels))
        return state.history[-1]

    ref, got = run(y), run(y.to(dtype))
    assert got["train_loss"] == ref["train_loss"] and got["val_acc"] == ref["val_acc"]
    model = nn.Linear(5, 3)
    assert evaluate(model, x, y.to(dtype)) == evaluate(model, x, y)
    assert as_class_labels(np.array([1, 0], dtype=np.uint8)).dtype == torch.int64


def test_float_labels_error_says_what_to_do():
    with pytest.raises(TypeError, match=r"class labels must be integers 0..C-1: use y.long\(\)"):
        as_class_labels(torch.tensor([0.0, 2.0, 1.0]))
    with pytest.raises(TypeError, match=r"use y.round\(\).long\(\) if they are class ids"):
        as_class_labels(torch.tensor([0.2, 2.0]))
    model = nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="train labels has dtype torch.float32"):
        Trainer(model, opt, epochs=1, batch_size=4, device="cpu").fit((torch.randn(8, 5), torch.zeros(8)))
    soft = torch.full((4, 3), 1 / 3)  # class probabilities pass through, as cross_entropy takes them
    assert as_class_labels(soft) is soft


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
