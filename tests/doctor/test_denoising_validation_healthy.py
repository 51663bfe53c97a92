"""A denoising autoencoder validated on fresh noise: every evaluation corrupts the clean validation rows anew and
scores the reconstruction against the clean rows. The corruption is the task (Vincent et al. 2008), so
``loop: validation augmentation`` does not name it; the same fresh noise on a classifier's validation inputs,
scored against class labels, still is."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.augmented_validation import augmented_validation, reconstruction_targets

NAME = "loop: validation augmentation"


def _run(task: str):
    torch.manual_seed(0)
    x = torch.tanh(torch.randn(320, 4) @ torch.randn(4, 16))
    labels = (x[:, 0] > 0).long()
    xtr, xva, ytr, yva = x[:256], x[256:], labels[:256], labels[256:]
    width = 16 if task == "denoise" else 2
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, width))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_of(inputs, clean, y):
        out = model(inputs + 0.3 * torch.randn_like(inputs))  # fresh noise on every call
        return F.mse_loss(out, clean) if task == "denoise" else F.cross_entropy(out, y)

    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            model.train()
            for i in torch.randperm(256).split(64):
                loss = loss_of(xtr[i], xtr[i], ytr[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                w.validate(loss_of(xva, xva, yva).item())
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {task: _run(task) for task in ("denoise", "classify")}


@pytest.mark.slow
def test_a_denoising_autoencoder_validated_on_fresh_noise_is_not_named(reports):
    assert NAME not in reports["denoise"]


@pytest.mark.slow
def test_fresh_noise_on_a_classifiers_validation_inputs_is_still_named(reports):
    v = reports["classify"].get(NAME)
    assert v is not None and v.status == "warn", v


def test_targets_of_the_inputs_shape_are_reconstruction_targets():
    assert reconstruction_targets([(64, 16)], [((64, 16), True)])
    assert not reconstruction_targets([(64, 16)], [((64,), False)])  # class labels
    assert not reconstruction_targets([(64, 1)], [((64, 1), True)])  # one value per row: a regression target
    assert not reconstruction_targets([(64, 16)], [((64, 16), False)])  # integer targets
    same = [torch.tensor([4.0, 10.0, 7.0])]
    keys = torch.arange(32)
    assert augmented_validation({0: keys, 1: keys + 100}, {0: same, 1: same}, {0: [(32, 16)], 1: [(32, 16)]},
                                {0: [((32, 16), True)], 1: [((32, 16), True)]}) is None
    assert augmented_validation({0: keys, 1: keys + 100}, {0: same, 1: same}, {0: [(32, 16)], 1: [(32, 16)]},
                                {0: [((32,), False)], 1: [((32,), False)]}).status == "warn"
