"""The doctor on a validation set augmented at random (a flip and noise in its Dataset's ``__getitem__``): every
evaluation sees other inputs for the same examples. The watch keys the first validations' input rows and reads the
targets their loss is given: the same targets in the same order with inputs that changed is named. A deterministic
validation set, and one resampled each time (a random subset: the targets change too), are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from trainwell import doctor
from trainwell.doctor.augmented_validation import augmented_validation

NAME = "loop: validation augmentation"


class Images(Dataset):
    """8x8 one-channel images, the class the brighter half; ``augment``: a random flip and a little noise."""

    def __init__(self, n, seed, augment):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 1, 8, 8, generator=g) * 0.5
        self.x[self.y == 1, :, :4] += 1.0
        self.augment = augment

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.augment:
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            x = x + 0.05 * torch.randn_like(x)
        return x, self.y[i]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 64, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _run(validation: str):
    torch.manual_seed(0)
    train_loader = DataLoader(Images(128, 0, True), batch_size=32, shuffle=True)
    val_set = Images(96, 1, validation == "augmented")
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            model.train()
            for xb, yb in train_loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            chosen = Subset(val_set, torch.randperm(96)[:64].tolist()) if validation == "resampled" else val_set
            model.eval()
            total, n = 0.0, 0
            with torch.no_grad():
                for xb, yb in DataLoader(chosen, batch_size=32):
                    total += F.cross_entropy(model(xb), yb, reduction="sum").item()
                    n += len(yb)
            w.validate(total / n)
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {v: _run(v) for v in ("augmented", "deterministic", "resampled")}


@pytest.mark.slow
def test_a_randomly_augmented_validation_set_is_named(reports):
    v = reports["augmented"].get(NAME)
    assert v is not None and v.status == "warn" and "change between evaluations" in v.value, v
    assert reports["augmented"]["learning rate (loss curve)"].status != "info" or \
        NAME not in reports["augmented"]["learning rate (loss curve)"].value


@pytest.mark.slow
def test_deterministic_and_resampled_validation_sets_are_not_named(reports):
    assert NAME not in reports["deterministic"] and NAME not in reports["resampled"]


def test_the_verdict_reads_inputs_against_targets():
    same = [torch.tensor([4.0, 10.0, 7.0])]
    keys = torch.arange(32)
    assert augmented_validation({0: keys, 1: keys + 100}, {0: same, 1: same}).status == "warn"
    assert augmented_validation({0: keys, 1: keys.clone()}, {0: same, 1: same}) is None  # the same inputs
    other = [torch.tensor([4.0, 9.0, 6.5])]  # another subset: the targets differ
    assert augmented_validation({0: keys, 1: keys + 100}, {0: same, 1: other}) is None
    assert augmented_validation({0: keys}, {0: same}) is None  # one validation: nothing to compare
