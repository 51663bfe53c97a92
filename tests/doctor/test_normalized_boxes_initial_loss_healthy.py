"""``initial loss`` on a detector's summed loss, cross-entropy on the class scores plus smooth L1 on boxes: boxes
normalized to [0, 1] by the image size (as DETR and YOLO regress them) sit at mean ~0.5 with a small spread, yet
the offset moves the summed loss little, since a zero output starts within 2x of the loss with that head set to
the boxes' mean. Boxes in raw pixels, whose offset dominates the sum, are still named."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.check import StructuredLoss
from trainwell.doctor.initial_loss import initial_loss
from trainwell.doctor.inputs import Targets


class Detector(nn.Module):
    """A shared body, a class head and a box head (x1, y1, x2, y2)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.cls, self.box = nn.Linear(32, 3), nn.Linear(32, 4)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.box(h)


def detection_loss(out, target):
    (logits, boxes), (labels, true_boxes) = out, target
    return F.cross_entropy(logits, labels) + F.smooth_l1_loss(boxes, true_boxes, beta=0.1)


def _verdict(pixels):
    torch.manual_seed(0)
    n = 128
    cx, cy = torch.rand(n) * 0.3 + 0.35, torch.rand(n) * 0.3 + 0.35
    w = torch.rand(n) * 0.2 + 0.1
    boxes = torch.stack([cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2], 1) * pixels
    x, labels = torch.randn(n, 10), torch.randint(0, 3, (n,))
    return initial_loss(Detector(), x, Targets((labels, boxes)), StructuredLoss(detection_loss))


def test_boxes_normalized_to_the_image_are_not_named():
    v = _verdict(pixels=1.0)
    assert v.status != "warn", v


def test_boxes_in_raw_pixels_are_still_named():
    v = _verdict(pixels=640.0)
    assert v.status == "warn" and "y[1]" in v.advice, v
