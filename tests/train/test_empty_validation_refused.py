"""Empty validation tensors are refused by ``Trainer.fit`` (they used to mean "no validation" silently), while a
pipeline run with ``data.val_fraction = 0`` still trains without validation."""
import pytest
import torch
from torch import nn

from tests.helpers import tiny_config
from trainwell.pipeline import fit
from trainwell.train import Trainer


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


@pytest.mark.parametrize("empty", [(torch.empty(0, 4), torch.empty(0, dtype=torch.long)),
                                   (torch.empty(0, 4).numpy(), torch.empty(0, dtype=torch.long).numpy())])
def test_empty_validation_tensors_are_refused_in_one_line(empty):
    torch.manual_seed(0)
    model = Mlp()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=8)
    with pytest.raises(ValueError) as err:
        trainer.fit((x, y), empty)
    message = str(err.value)
    assert message.startswith("val: got 0 examples") and "fit(train)" in message and len(message.splitlines()) == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # refused before a step
    state = trainer.fit((x, y))  # leaving val out trains without validation
    assert len(state.history) == 2 and "val_loss" not in state.history[-1]


def test_pipeline_with_no_validation_split_still_trains(tmp_path):
    cfg = tiny_config("data.val_fraction=0", epochs=2)
    result = fit(cfg, out=tmp_path / "noval", quiet=True)
    assert result.summary["final"]["val_loss"] is None
    assert result.summary["final"]["train_loss"] is not None
