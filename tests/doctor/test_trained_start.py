"""The reading of a model that already predicts its labels before its first update (``predicts_labels``), on data
that are a few tight clusters, one per class: a fresh network maps whole clusters to classes, so its examples are not
independent trials, while a network trained on the labels must still be named."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.trained_start import predicts_labels


def clustered(seed=0):
    """64 examples in 4 tight clusters of 16 features, the cluster's index its label."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(4, 16, generator=g)
    y = torch.arange(64) % 4
    return centres[y] + 0.5 * torch.randn(64, 16, generator=g), y


def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))


def test_fresh_networks_on_tight_clusters_are_not_read_as_trained():
    x, y = clustered()
    with torch.no_grad():
        read = [seed for seed in range(40) if predicts_labels(mlp(seed)(x), y) is not None]
    assert read == []


def test_a_network_trained_a_few_dozen_steps_on_the_clusters_is_read_as_trained():
    x, y = clustered()
    model = mlp(100)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        reading = predicts_labels(model(x), y)
    assert reading is not None and reading.startswith("accuracy 100%")


def test_a_network_trained_on_spread_out_data_is_still_read_as_trained():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 10, generator=g)
    y = (x[:, :4] + torch.randn(200, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert predicts_labels(model(x), y) is not None
