"""A dict batch holds more than the input and target (``{"image", "meta", "label"}``): the model is called with the
input key's tensor alone; a model written for the whole dict is told so in one line naming the keys left out,
and a model that reads the tensor trains as before."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell.train import Trainer


class ImagesWithMeta(Dataset):
    def __len__(self):
        return 24

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"image": torch.randn(1, 4, 4, generator=g), "meta": torch.randn(2, generator=g), "label": i % 2,
                "index": i}


class ReadsTheDict(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(16, 4), nn.Linear(2, 4), nn.Linear(8, 2)

    def forward(self, batch):
        return self.head(torch.cat([self.a(batch["image"].flatten(1)), self.b(batch["meta"])], 1))


def fit(model):
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1)
    return trainer.fit(DataLoader(ImagesWithMeta(), batch_size=8))


def test_a_model_written_for_the_whole_dict_is_told_which_keys_it_was_not_given():
    model = ReadsTheDict()
    with pytest.raises(TypeError) as err:
        fit(model)
    message = str(err.value)
    assert "on the batch's 'image' tensor, which is all the model is called with" in message
    assert "the batch's 'meta', 'index' are not passed" in message and len(message.splitlines()) == 1
    with pytest.raises(IndexError):  # the oracle: the same forward on the image tensor alone
        model(next(iter(DataLoader(ImagesWithMeta(), batch_size=8)))["image"])


def test_a_model_that_reads_the_input_tensor_trains_with_other_keys_in_the_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    state = fit(model)
    assert len(state.history) == 1 and state.history[0]["train_loss"] > 0


def test_validation_and_predict_name_the_keys_the_model_was_not_given():
    model = ReadsTheDict()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1)
    loader = DataLoader(ImagesWithMeta(), batch_size=8)
    unlabelled = [{"image": b["image"], "meta": b["meta"]} for b in loader]
    calls = (lambda: trainer.validate(loader), lambda: trainer.predict(loader), lambda: trainer.predict(unlabelled))
    for call in calls:
        with pytest.raises(TypeError, match=r"on the batch's 'image' tensor, .*the batch's 'meta'"):
            call()
