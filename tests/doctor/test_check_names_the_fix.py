"""``doctor.check`` names the cause and the fix where it can read them: integer targets handed to a loss that takes
floats, a segmentation loss over ``reshape(-1, C)`` of (B, C, H, W) outputs (the reading ``doctor.watch`` makes
from a step's gradient, made here on the batch's), and a Transformer whose activations it does not read."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, LABELS = 12, 4


def test_integer_multi_label_targets_for_bce_with_logits_are_told_to_be_float():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, LABELS))
    x = torch.randn(64, D)
    y = (x[:, :LABELS] > 0).long()  # multi-hot rows as int64
    with pytest.raises(RuntimeError):  # the oracle: torch refuses them
        nn.BCEWithLogitsLoss()(model(x), y)
    v = doctor.check(model, x, y, nn.BCEWithLogitsLoss())["forward and loss run"]
    assert v.status == "fail" and "y.float()" in v.advice and "floating-point targets" in v.advice
    assert "forward and loss run" not in doctor.check(model, x, y.float(), nn.BCEWithLogitsLoss()).checks


class SegNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.body(x))


def _pixels(n=48, side=8):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(n, 3, side, side, generator=g) * 0.3
    mask = F.avg_pool2d(img, 3, 1, 1).argmax(1)
    return img + 0.5 * F.one_hot(mask, 3).permute(0, 3, 1, 2).float(), mask


@pytest.mark.slow
def test_a_segmentation_loss_over_scrambled_classes_is_named_by_check_and_explains_the_overfit():
    img, mask = _pixels(side=16)

    def flat(out, t):  # the class axis not moved last before the reshape
        return F.cross_entropy(out.reshape(-1, 3), t.reshape(-1))

    report = doctor.check(SegNet(), img, mask, flat)
    v = report["loss over the class axis"]
    assert v.status == "fail" and "movedim(1, -1)" in v.advice
    overfit = report["overfit a tiny subset"]
    assert overfit.status == "fail" and "loss over the class axis" in overfit.advice
    img, mask = _pixels()

    def moved(out, t):
        return F.cross_entropy(out.movedim(1, -1).reshape(-1, 3), t.reshape(-1))

    for loss_fn in (moved, nn.CrossEntropyLoss()):
        assert "loss over the class axis" not in doctor.check(SegNet(), img, mask, loss_fn).checks


class TokenClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)  # ReLU inside
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        return self.head(self.enc(self.emb(ids)).mean(1))


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_transformer_is_not_said_to_have_no_relu():
    ids = torch.randint(0, 20, (32, 6), generator=torch.Generator().manual_seed(0))
    y = ids[:, 0] % 3
    assert TokenClassifier().enc.layers[0].activation is F.relu  # the oracle: torch's layer uses a ReLU
    v = doctor.check(TokenClassifier(), ids, y, nn.CrossEntropyLoss())["dead units"]
    assert v.status == "skip" and "inside torch's Transformer layers" in v.value
    assert "no ReLU to read" not in v.value
