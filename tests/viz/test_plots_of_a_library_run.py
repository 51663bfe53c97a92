"""The figures of a run trained in the user's own code with ``Trainer``: learning curves with whole-epoch ticks
(no tick at epoch 1.5 for a 3-epoch run), the first layer's weights of the user's CNN."""
import pytest
import torch
from torch import nn

from trainwell.train import Trainer
from trainwell.train.callbacks import best_epoch
from trainwell.viz import plots


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features, self.head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def drawn(monkeypatch):
    figures = []
    real = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: figures.append(fig) or real(fig, path, **kw))
    return figures


@pytest.mark.slow  # matplotlib's first drawing: seconds
def test_a_short_library_runs_curves_tick_whole_epochs(tmp_path, monkeypatch):
    torch.manual_seed(0)
    x, y = torch.randn(48, 3, 6, 6), torch.randint(0, 2, (48,))
    model = Cnn()
    state = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=3, batch_size=16).fit(
        (x, y), (x[:16], y[:16]))
    figures = drawn(monkeypatch)
    assert plots.learning_curves(state.history, tmp_path / "curves.png", best_epoch(state.history)).is_file()
    assert plots.learning_rate(state.history, tmp_path / "lr.png").is_file()
    for fig in figures:
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert plots.first_layer_weights(model, (3, 6, 6), tmp_path / "w.png").is_file()
