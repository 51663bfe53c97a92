"""The first-layer figure of a user's model shows the layer that reads the input, whatever order the model
registers its layers in (a head declared before its body)."""
import torch
from torch import nn

from trainwell.viz.first_layer import first_layer_units


class HeadFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 2)  # registered first, runs last
        self.stem = nn.Conv2d(1, 6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.stem(x)).mean((2, 3)))


def test_the_layer_that_reads_the_input_is_drawn_not_the_first_registered():
    model = HeadFirst()
    units = first_layer_units(model, (1, 8, 8))
    assert "Conv2d" in units["title"] and units["units"].shape == (6, 3, 3)
    assert torch.equal(torch.from_numpy(units["units"]), model.stem.weight.detach()[:, 0])  # the oracle


def test_a_model_that_cannot_run_on_the_shape_falls_back_to_the_registration_order():
    model = HeadFirst()
    before = torch.random.get_rng_state()
    units = first_layer_units(model, (3, 8, 8))  # 3 channels: the stem refuses them
    assert "Linear" in units["title"] and torch.equal(torch.random.get_rng_state(), before)


def test_the_tensorboard_filter_image_reads_the_layer_that_runs_first_given_the_input_shape():
    from trainwell.train.loggers import filter_grid

    model = HeadFirst()
    assert tuple(filter_grid(model, scale=1).shape) == (2, 6)  # no shape: the first registered, the head
    grid = filter_grid(model, scale=1, input_shape=(1, 8, 8))  # six 3x3 filters, tiled 6 to a row
    assert tuple(grid.shape) == (3, 6 * 4 - 1)
    w = model.stem.weight.detach()[:, 0]
    expected = (w / (2 * w.abs().max()) + 0.5).clamp(0, 1)  # the oracle: the stem's filters on the grey scale
    assert torch.allclose(grid[:, :3], expected[0]) and torch.allclose(grid[:, 4:7], expected[1])
