"""A segmenter whose training dataset maps its masks' label ids through a class-id remap (the annotation tool's ids
to the ids the model trains on) while the validation dataset leaves the remap out: the validation pixels of every
class but the background are numbered differently, and the validation loss climbs. The watch reads the per-pixel
confusion of (B, C, H, W) scores with (B, H, W) masks, a few thousand pixels a call, each class weighing alike (the
background outnumbers the rest), and names the numbering; the remap applied to both splits is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell import doctor
from trainwell.doctor.relabelled_validation import NAME, confusion, relabelled

C, S = 4, 16
REMAP = torch.tensor([0, 2, 3, 1])  # the annotation tool's label ids -> the ids the model is trained on


class Scenes(Dataset):
    """Images of S x S pixels: a background (0) and three rectangles of classes 1..3, each class its own colour
    under noise; ``remap``: the masks go through REMAP."""

    def __init__(self, n, seed, remap):
        g = torch.Generator().manual_seed(seed)
        self.masks = torch.zeros(n, S, S, dtype=torch.long)
        for i in range(n):
            for cls in (1, 2, 3):
                r, c = torch.randint(0, S - 5, (2,), generator=g).tolist()
                h, w = torch.randint(3, 6, (2,), generator=g).tolist()
                self.masks[i, r:r + h, c:c + w] = cls
        colours = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        self.images = colours[self.masks].permute(0, 3, 1, 2) + 0.3 * torch.randn(n, 3, S, S, generator=g)
        self.remap = remap

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], REMAP[self.masks[i]] if self.remap else self.masks[i]


class Segmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(16, C, 1))

    def forward(self, x):
        return self.net(x)


def _run(validation_remapped):
    torch.manual_seed(0)
    train = DataLoader(Scenes(192, 0, remap=True), batch_size=16, shuffle=True)
    val = DataLoader(Scenes(48, 1, remap=validation_remapped), batch_size=16)
    model = Segmenter()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            model.train()
            for xb, yb in train:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            total, n = 0.0, 0
            with torch.no_grad():
                for xb, yb in val:
                    total += F.cross_entropy(model(xb), yb, reduction="sum").item()
                    n += yb.numel()
            w.validate(total / n)
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def runs():
    return {"remap_in_training_only": _run(False), "remap_in_both": _run(True)}


@pytest.mark.slow
def test_masks_remapped_in_training_only_are_named(runs):
    v = runs["remap_in_training_only"][NAME]
    assert v.status == "fail" and "numbered differently" in v.value, v.value
    assert "validation label 1 as 2, 2 as 3, 3 as 1" in v.value and "pixels' share" in v.value
    assert "remap" in v.advice
    assert f"explained by '{NAME}'" in runs["remap_in_training_only"]["overfitting"].value


@pytest.mark.slow
def test_masks_remapped_in_both_splits_are_not_named(runs):
    assert NAME not in runs["remap_in_both"]


def test_the_pixels_read_and_the_background_weighing_as_one_class():
    # 2 images of 64 x 64 pixels, the background 90% of them: the model predicts 1 -> 2, 2 -> 3, 3 -> 1
    g = torch.Generator().manual_seed(0)
    masks = torch.where(torch.rand(2, 64, 64, generator=g) < 0.9, 0, torch.randint(1, 4, (2, 64, 64), generator=g))
    scores = F.one_hot(REMAP[masks], C).permute(0, 3, 1, 2).float()
    table = confusion(scores, masks, -100)
    assert int(table.sum()) == 4096  # of the 8192 pixels, every second one
    assert relabelled(table, [0, 1, 2, 3]) is None  # counted per pixel, the background's 90% agree as given
    v = relabelled(table, [0, 1, 2, 3], per_class=True)
    assert v.status == "fail" and "agree with 25% of them as given, with 100% renumbered" in v.value
    assert relabelled(confusion(scores, REMAP[masks], -100), [0, 1, 2, 3], per_class=True) is None  # as given
    assert confusion(torch.zeros(8, 2000), torch.zeros(8, dtype=torch.long), -100) is None  # a vocabulary: not read
