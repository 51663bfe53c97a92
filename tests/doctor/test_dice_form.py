"""The soft Dice and IoU losses read back from the gradient they send to the outputs (autograd is the oracle):
their smoothing, weight and grouping, and the losses that are not read as one."""

import torch
import torch.nn.functional as F

from trainwell.doctor.dice_form import read_dice


def dice_loss(out, mask):
    return 1 - (2 * (out * mask).sum() + 1) / (out.sum() + mask.sum() + 1)


def _read(loss_fn, out, y):
    """read_dice on the gradient autograd gives ``loss_fn`` at ``out``."""
    out = out.clone().requires_grad_(True)
    loss = loss_fn(out, y)
    loss.backward()
    return read_dice(out.detach(), out.grad, y, float(loss.detach()))


def test_the_loss_read_back_from_the_gradient_has_the_smoothing_weight_and_groups_it_was_written_with():
    g = torch.Generator().manual_seed(1)
    out, mask = torch.randn(8, 1, 12, 12, generator=g), (torch.rand(8, 1, 12, 12, generator=g) > 0.7).float()

    def half_dice(o, m):  # weighted 1/2, smoothing 0.25, over the whole batch
        return 0.5 * (1 - (2 * (o * m).sum() + 0.25) / (o.sum() + m.sum() + 0.25))

    def per_image_iou(o, m):  # the mean over the images of each one's IoU loss, smoothing 1
        overlap = (o * m).sum((1, 2, 3))
        return (1 - (overlap + 1) / (o.sum((1, 2, 3)) + m.sum((1, 2, 3)) - overlap + 1)).mean()

    read = _read(half_dice, out, mask)
    assert (read["loss"], read["groups"]) == ("Dice", 1)
    assert abs(read["smooth"] - 0.25) < 1e-3 and abs(read["weight"] - 0.5) < 1e-4
    read = _read(per_image_iou, out, mask)
    assert (read["loss"], read["groups"]) == ("IoU", 8)
    assert abs(read["smooth"] - 1) < 1e-3 and abs(read["weight"] - 1) < 1e-4
    assert (read["lowest"], read["highest"]) == (float(out.min()), float(out.max()))
    for other in (F.binary_cross_entropy_with_logits, F.mse_loss, lambda o, m: dice_loss(torch.sigmoid(o), m),
                  lambda o, m: (o * (1 - 2 * m)).mean()):  # the last: a critic's score, affine in the targets
        assert _read(other, out, mask) is None
