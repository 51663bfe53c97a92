"""The doctor on a validation loss averaged with the wrong denominator in a validation that forgot
``torch.no_grad()``: the model in eval mode, gradients on, no backward after its forwards. Such a validation is read
as one without gradients is; a loop training in eval mode, a training accuracy computed in eval mode with
gradients, and a GAN's discriminator put in eval mode for its generator's step are not mistaken for one."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.validation_average import TRAINED

NAME = "loop: validation loss average"


def _splits(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(10, 3, generator=g)
    x, xv = torch.randn(192, 10, generator=g), torch.randn(100, 10, generator=g)
    return TensorDataset(x, (x @ w).argmax(1)), TensorDataset(xv, (xv @ w).argmax(1))


class Net(nn.Module):
    """A small classifier, with dropout or without."""

    def __init__(self, p=0.2):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(10, 32), nn.Dropout(p), nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def _validate(model, val_loader, n, average):
    """The user's validation, without torch.no_grad(): the batch means summed over the examples, or weighted."""
    total = 0.0
    for xb, yb in val_loader:
        loss = F.cross_entropy(model(xb), yb)
        total += loss.item() if average == "means" else loss.item() * len(yb)
    return total / n


def _run(average: str, train_in_eval: bool = False, train_accuracy: bool = False):
    """Trains 3 epochs and validates after each in eval mode with gradients on. ``train_in_eval``: the model (no
    dropout) is never put back in train mode after the first validation; ``train_accuracy``: each step's accuracy
    is computed in eval mode, with gradients, on its training batch."""
    torch.manual_seed(0)
    train_ds, val_ds = _splits()
    train_loader = DataLoader(train_ds, batch_size=16, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=16)
    model = Net(0.0 if train_in_eval else 0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(3):
            if not train_in_eval:
                model.train()
            for xb, yb in train_loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
                if train_accuracy:
                    model.eval()
                    accuracy = (model(xb).argmax(1) == yb).float().mean().item()  # noqa: F841
                    model.train()
            model.eval()
            w.validate(_validate(model, val_loader, len(val_ds), average))
    return w


@pytest.fixture(scope="module")
def runs():
    return {(a, mode): _run(a, train_in_eval=mode == "eval", train_accuracy=mode == "accuracy")
            for a in ("means", "weighted") for mode in ("train", "eval", "accuracy")}


def _verdict(w):
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.mark.slow
def test_a_validation_with_gradients_averaged_over_the_examples_fails(runs):
    for mode in ("train", "eval", "accuracy"):
        v = _verdict(runs[("means", mode)])
        assert v is not None and v.status == "fail" and "batch means summed" in v.value, (mode, v)
        assert "100 examples" in v.value and "7 batches" in v.value, v.value


@pytest.mark.slow
def test_a_validation_with_gradients_averaged_per_example_passes(runs):
    for mode in ("train", "eval", "accuracy"):
        assert _verdict(runs[("weighted", mode)]) is None, mode


@pytest.mark.slow
def test_a_loop_training_in_eval_mode_is_read_only_while_its_validations_need_it(runs):
    losses = runs[("means", "eval")].probe.validation_losses
    assert losses._graded_validations  # its validations run with gradients: their forwards stay read


def _eval_trained(no_grad_validation: bool):
    """A model without dropout trained in eval mode after its first validation (model.train() forgotten)."""
    torch.manual_seed(0)
    train_ds, val_ds = _splits()
    train_loader, val_loader = DataLoader(train_ds, batch_size=16), DataLoader(val_ds, batch_size=50)
    model = Net(0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:
        for _ in range(2):
            for xb, yb in train_loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.set_grad_enabled(not no_grad_validation):
                w.validate(_validate(model, val_loader, len(val_ds), "weighted"))
    return w.probe.validation_losses


def test_a_loop_training_in_eval_mode_with_validations_without_gradients_stops_being_read():
    losses = _eval_trained(no_grad_validation=True)
    assert losses._trained == TRAINED and not losses._graded_validations  # its 12 later steps were not read
    assert len(losses.validations) == 2


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def test_a_gans_discriminator_in_eval_mode_for_the_generators_step_is_not_a_validation():
    """The watched discriminator is put in eval mode (dropout off) for the generator's step: its forwards with
    gradients feed a BCE loss whose backward reaches the generator; its held-out real-data loss, averaged per
    example, is the validation."""
    torch.manual_seed(0)
    real, held_out = torch.randn(128, 8) * 0.5 + 1.0, torch.randn(40, 8) * 0.5 + 1.0
    G, D = Generator(), Discriminator()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-3), torch.optim.Adam(D.parameters(), 2e-3)
    bce = nn.BCEWithLogitsLoss()
    with doctor.watch(D, opt_d) as w:
        for _ in range(3):
            for xb in real.split(32):
                D.train()
                fake = G(torch.randn(len(xb), 4))
                d_loss = bce(D(xb), torch.ones(len(xb), 1)) + bce(D(fake.detach()), torch.zeros(len(xb), 1))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                w.step(d_loss)
                D.eval()
                g_loss = bce(D(fake), torch.ones(len(xb), 1))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
            with torch.no_grad():
                w.validate(sum(bce(D(xb), torch.ones(len(xb), 1)).item() * len(xb)
                               for xb in held_out.split(16)) / len(held_out))
    assert _verdict(w) is None
