"""``doctor.watch`` on users' segmentation loops with a hand-written soft Dice (or IoU) loss: on raw scores (no
sigmoid or softmax before it) it is named by ``loop: loss input``, recognised by the gradient it sends to the
outputs; the same loss on probabilities (the model ends with a sigmoid, or the loop applies one) and a BCE loss on
the raw scores are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

CHECK = "loop: loss input"


def _squares(n=256, classes=2, seed=0):
    """Images with one bright square each; the mask marks it (classes=2: a float mask (B, 1, H, W)), or its class
    (1 or 2, by the channel it is bright in) as integer labels (B, H, W)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 16, 16, generator=g) * 0.3
    labels = torch.zeros(n, 16, 16, dtype=torch.long)
    for i in range(n):
        r, c = torch.randint(0, 10, (2,), generator=g).tolist()
        k = 1 + i % 2 if classes == 3 else 1
        labels[i, r : r + 6, c : c + 6] = k
        x[i, k - 1 if classes == 3 else 0, r : r + 6, c : c + 6] += 1.0
    return x, (labels[:, None].float() if classes == 2 else labels)


class SegNet(nn.Module):
    def __init__(self, out_channels=1, sigmoid=False):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(2, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(16, out_channels, 1))
        self.sigmoid = sigmoid

    def forward(self, x):
        scores = self.body(x)
        return torch.sigmoid(scores) if self.sigmoid else scores


def dice_loss(out, mask):
    return 1 - (2 * (out * mask).sum() + 1) / (out.sum() + mask.sum() + 1)


def iou_loss(out, mask):
    overlap = (out * mask).sum()
    return 1 - (overlap + 1) / (out.sum() + mask.sum() - overlap + 1)


def per_class_dice(probs, labels):
    """1 - the mean over the classes of the Dice over the batch (the one-hot targets made from the labels)."""
    onehot = F.one_hot(labels, probs.shape[1]).permute(0, 3, 1, 2).float()
    overlap = (probs * onehot).sum((0, 2, 3))
    return 1 - ((2 * overlap + 1) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)).mean()


def _run(model, loss_fn, classes=2, lr=1e-3, epochs=2):
    x, y = _squares(classes=classes)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


def _named(report):
    return next((v for v in report if v.check == CHECK), None)


@pytest.mark.parametrize("loss_fn, kind", [(dice_loss, "Dice"), (iou_loss, "IoU")])
@pytest.mark.slow  # 0.23 s each on a 2-core CPU (RESULTS §51)
def test_an_overlap_loss_on_raw_scores_is_named_and_the_loss_curve_defers_to_it(loss_fn, kind):
    report = _run(SegNet(), loss_fn)
    verdict = _named(report)
    assert verdict is not None and verdict.status == "fail", report
    assert f"a soft {kind} loss" in str(verdict.value) and "raw scores" in str(verdict.value)
    assert "torch.sigmoid(out)" in verdict.advice
    curve = report["learning rate (loss curve)"]
    assert curve.status == "info" and CHECK in str(curve.value), curve


@pytest.mark.parametrize("model, loss_fn", [
    (SegNet(sigmoid=True), dice_loss),  # the model ends with a sigmoid
    (SegNet(), lambda out, mask: dice_loss(torch.sigmoid(out), mask)),  # the loop applies it
    (SegNet(), lambda out, mask: F.binary_cross_entropy_with_logits(out, mask)),
    (SegNet(sigmoid=True), iou_loss),
])
@pytest.mark.slow  # 0.20 s each on a 2-core CPU (RESULTS §51)
def test_an_overlap_loss_on_probabilities_is_not_named(model, loss_fn):
    assert _named(_run(model, loss_fn)) is None


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("softmax, named", [(False, True), (True, False)])
def test_a_per_class_dice_over_integer_labels_is_named_only_on_raw_scores(softmax, named):
    def loss_fn(out, labels):
        return per_class_dice(out.softmax(1) if softmax else out, labels)

    verdict = _named(_run(SegNet(out_channels=3), loss_fn, classes=3))
    assert (verdict is not None and verdict.status == "fail") is named, verdict
