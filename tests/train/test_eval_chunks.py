"""Evaluation in chunks of rows: the same numbers as one forward over all rows, whatever the chunk size."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.nn.variance_shift import variance_shift
from trainwell.train import Trainer
from trainwell.train.learners import CPU_EVAL_ROWS, eval_rows, evaluate


def _user_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 12, 4))


def test_cpu_chunks_are_small_and_other_devices_wide():
    assert eval_rows("cpu") == CPU_EVAL_ROWS < eval_rows("cuda") and eval_rows(torch.device("meta")) > CPU_EVAL_ROWS
    # a population's members share a chunk: it shrinks past 16 of them, never below 64 rows
    assert [eval_rows("cpu", m) for m in (1, 16, 32, 64, 1024)] == [256, 256, 128, 64, 64]
    assert eval_rows("cuda", 64) == eval_rows("cuda")


@pytest.mark.parametrize("rows", [None, 97, 10_000])
def test_evaluate_in_chunks_equals_one_forward(rows):
    model = _user_cnn()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2 * CPU_EVAL_ROWS + 37, 1, 12, generator=g), torch.randint(0, 4, (2 * CPU_EVAL_ROWS + 37,),
                                                                                generator=g)
    with torch.no_grad():
        out = model(x)
    m = evaluate(model, x, y, F.cross_entropy, batch_size=rows)
    assert m["loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    assert m["acc"] == pytest.approx(float((out.argmax(1) == y).float().mean()))


def test_predict_in_chunks_equals_one_forward():
    model = _user_cnn()
    x = torch.randn(CPU_EVAL_ROWS + 5, 1, 12)
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=4)
    with torch.no_grad():
        torch.testing.assert_close(t.predict(x), model.eval()(x))


def test_variance_shift_runs_no_forward_without_batchnorm():
    model, calls = _user_cnn(), []
    model.register_forward_hook(lambda *a: calls.append(1))
    assert variance_shift(model, torch.randn(9, 1, 12)) == [] and calls == []
