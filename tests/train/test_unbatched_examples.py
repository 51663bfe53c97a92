"""One example given without its batch axis, to a user's own model: named in one line (training and evaluation),
where torch would fail indexing it or, at prediction, in a later BatchNorm."""

import pytest
import torch
from torch import nn

from trainwell.train import Trainer


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


@pytest.mark.parametrize("call", ["fit", "validate"])
def test_one_example_and_one_label_without_their_batch_axis_are_named(call):
    model = _mlp()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8)
    x, y = torch.randn(4), torch.tensor(1)
    with pytest.raises(ValueError, match=r"inputs of shape \(4,\) and targets of shape \(\): a target without a "
                                         r"batch axis.*x.unsqueeze\(0\), y.unsqueeze\(0\) for one example"):
        getattr(trainer, call)((x, y))
    result = getattr(trainer, call)((x.unsqueeze(0), y.unsqueeze(0)))  # the oracle: the batched example runs
    if call == "validate":
        with torch.no_grad():
            expected = nn.functional.cross_entropy(model.eval()(x.unsqueeze(0)), y.unsqueeze(0)).item()
        assert result["val_loss"] == pytest.approx(expected, rel=1e-6)
