"""A cross-entropy on two classes is not read as a soft Dice loss when every target of a batch is one class and
the batch holds few distinct examples (a sampler given one weight per class draws only examples 0 and 1): its
gradient (p - onehot(y)) / B sums to 0 over each example, which a two-output group fits as an affine gradient with
a Dice ratio of 1 up to rounding. A Dice over the same (B, 2) raw scores is still read."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from trainwell import doctor
from trainwell.doctor.dice_form import read_dice

CHECK = "loop: loss input"


def _read(loss_fn, out, y):
    """read_dice on the gradient autograd gives ``loss_fn`` at ``out``."""
    out = out.clone().requires_grad_(True)
    loss = loss_fn(out, y)
    loss.backward()
    return read_dice(out.detach(), out.grad, y, float(loss.detach()))


def test_cross_entropy_on_a_batch_of_one_class_and_few_distinct_examples_is_not_read_as_dice():
    g = torch.Generator().manual_seed(0)
    zeros = torch.zeros(32, dtype=torch.long)
    for _ in range(40):
        one_example = (2 * torch.randn(1, 2, generator=g)).repeat(32, 1)
        two_examples = (2 * torch.randn(2, 2, generator=g)).repeat(16, 1)
        assert _read(F.cross_entropy, one_example, zeros) is None
        assert _read(F.cross_entropy, two_examples, zeros) is None


def test_a_dice_over_two_class_raw_scores_is_still_read():
    g = torch.Generator().manual_seed(0)
    scores, labels = 2 * torch.randn(32, 2, generator=g), torch.randint(0, 2, (32,), generator=g)

    def dice_over_classes(out, y):  # one-hot targets over the whole batch, smoothing 1
        onehot = F.one_hot(y, 2).float()
        return 1 - (2 * (out * onehot).sum() + 1) / (out.sum() + onehot.sum() + 1)

    read = _read(dice_over_classes, scores, labels)
    assert read is not None and (read["loss"], read["groups"]) == ("Dice", 1)
    assert abs(read["smooth"] - 1) < 1e-3 and abs(read["weight"] - 1) < 1e-4


class Points(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@pytest.mark.parametrize("seed", [2, 8])
@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_per_class_sampler_weights_with_cross_entropy_are_named_without_a_dice_reading(seed):
    g = torch.Generator().manual_seed(seed)
    n = 400
    y = (torch.rand(n, generator=g) < 0.2).long()
    y[:2] = 0
    x = torch.randn(n, 8, generator=g) + 2 * y[:, None]
    class_weights = 1.0 / torch.bincount(y).float()
    sampler = WeightedRandomSampler(class_weights, num_samples=n, replacement=True, generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=1) as w:
        for _ in range(2):
            for xb, yb in DataLoader(Points(x, y), batch_size=32, sampler=sampler):
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    report = w.report()
    assert not [v for v in report if v.check == CHECK]
    assert any(v.check == "loop: sampler weights" and v.status == "fail" for v in report)
