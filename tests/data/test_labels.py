"""Class labels from a user's own data: any integer dtype trains like int64, float labels are named."""

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import boring_net
from trainwell.data.labels import as_class_labels
from trainwell.train.trainer import Trainer, evaluate


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
    with pytest.raises(TypeError, match=r"train labels has dtype torch.float32: .*use y.long\(\)$"):
        Trainer(model, opt, epochs=1, batch_size=4, device="cpu").fit((torch.randn(8, 5), torch.zeros(8)))
    soft = torch.full((4, 3), 1 / 3)  # class probabilities pass through, as cross_entropy takes them
    assert as_class_labels(soft) is soft
