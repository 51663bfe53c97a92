"""predict on a user's unlabelled data: dict batches that have inputs and no targets."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainwell.train import Trainer


def _trainer(**kwargs):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8, **kwargs), model


def test_a_loader_of_input_only_dicts_is_predicted_as_the_model_computes_it():
    trainer, model = _trainer()
    x = torch.randn(20, 4)
    out = trainer.predict(DataLoader([{"image": row, "id": i} for i, row in enumerate(x)], batch_size=8))
    assert torch.allclose(out, model(x).detach(), atol=1e-6)


def test_own_key_names_are_read_through_batch_keys():
    trainer, model = _trainer(batch_keys=("signal", "cls"))
    x = torch.randn(20, 4)
    out = trainer.predict(DataLoader([{"signal": row} for row in x], batch_size=8))
    assert torch.allclose(out, model(x).detach(), atol=1e-6)


def test_a_dict_without_an_input_key_is_named():
    trainer, _ = _trainer()
    with pytest.raises(TypeError, match=r"predict: a dict batch with keys 'signal' has no input key trainwell knows"):
        trainer.predict(DataLoader([{"signal": torch.zeros(4)}] * 4, batch_size=2))
