"""Per-position class scores given classes last, (N, T, C), against (N, T) labels under a class-index loss: torch
takes the classes on axis 1 and refuses the sizes in its own terms; training, validation and evaluation name the
transpose in one line, and the same scores with classes on axis 1 train and score as torch's loss does."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.train import Trainer, evaluate


class Tagger(nn.Module):
    def __init__(self, classes_last=True):
        super().__init__()
        self.emb, self.out = nn.Embedding(20, 8), nn.Linear(8, 5)
        self.classes_last = classes_last

    def forward(self, tokens):
        scores = self.out(self.emb(tokens))  # (N, T, C)
        return scores if self.classes_last else scores.movedim(-1, 1)


g = torch.Generator().manual_seed(0)
TOKENS = torch.randint(0, 20, (24, 7), generator=g)
TAGS = TOKENS % 5


def trainer(model, loss_fn="cross_entropy"):
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8, loss_fn=loss_fn)


@pytest.mark.parametrize("call", [
    lambda t: t.fit((TOKENS, TAGS)),
    lambda t: t.validate(TOKENS, TAGS),
    lambda t: t.test(DataLoader(TensorDataset(TOKENS, TAGS), batch_size=8)),
    lambda t: evaluate(t.learner.model, TOKENS, TAGS, nn.CrossEntropyLoss()),
], ids=["fit", "validate", "test loader", "evaluate"])
def test_classes_last_scores_are_named_with_the_transpose(call):
    model = Tagger()
    with pytest.raises(ValueError) as err:
        call(trainer(model))
    message = str(err.value)
    assert "scores are (" in message and ", 7, 5), classes last, against labels (" in message
    assert ", 5, 7); return out.movedim(-1, 1)" in message and len(message.splitlines()) == 1
    with pytest.raises(RuntimeError):  # the oracle: torch refuses the same scores
        F.cross_entropy(model(TOKENS), TAGS)


def test_classes_on_axis_1_score_as_torchs_loss():
    torch.manual_seed(0)
    model = Tagger(classes_last=False)
    tags = TAGS.clone()
    tags[:, 5:] = -100  # unlabelled positions
    scores = model(TOKENS).detach()
    metrics = trainer(model).validate(TOKENS, tags)
    assert metrics["val_loss"] == pytest.approx(float(F.cross_entropy(scores, tags)), rel=1e-6)
    labelled = tags != -100
    assert metrics["val_acc"] == pytest.approx(float((scores.argmax(1)[labelled] == tags[labelled]).float().mean()))
