"""A small U-Net-like segmenter under per-pixel cross-entropy with ``ignore_index=255``, VOC's void label. A binary
mask read from a PNG as 0/255 puts its foreground on the void label: the loss reads the background only. Check and
watch name it; 0/1 masks, also with a void border of 255, pass."""

import pytest
import torch
from torch import nn

from trainwell import doctor


def _images(n=256):
    """Noisy 16 x 16 images with one brighter rectangle each; the mask marks it 1."""
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(n, 1, 16, 16, generator=g)
    mask = torch.zeros(n, 16, 16, dtype=torch.long)
    for k in range(n):
        r, c, h, w = torch.randint(2, 9, (2,), generator=g).tolist() + torch.randint(3, 7, (2,), generator=g).tolist()
        mask[k, r : r + h, c : c + w] = 1
        x[k, 0, r : r + h, c : c + w] += 1.0
    return x, mask


class TinyUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        a = self.down(x)
        return self.out(torch.cat([a, self.up(self.mid(a))], 1))


def _run(masks: str):
    torch.manual_seed(0)
    x, mask = _images()
    if masks == "png":  # foreground stored as 255
        mask = mask * 255
    elif masks == "void_border":  # VOC: a band of void pixels around each object
        mask[:, 0, :] = 255
    model = TinyUNet()
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    checked = doctor.check(model, x[:64], mask[:64], loss_fn, optimizer=opt)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            order = torch.randperm(len(x))
            for i in range(0, len(x), 16):
                batch = order[i : i + 16]
                loss = loss_fn(model(x[batch]), mask[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=mask[batch])
    return checked, w.report()


@pytest.mark.parametrize("masks", ["png", "binary", "void_border"])
@pytest.mark.slow  # seconds each
def test_a_0_255_mask_under_ignore_index_255_is_named_by_check_and_watch(masks):
    checked, watched = _run(masks)
    if masks == "png":
        assert checked["targets"].status == "warn" and "mask // 255" in checked["targets"].advice
        assert watched["loop: labels"].status == "warn" and "mask // 255" in watched["loop: labels"].advice
    else:
        assert [v.status for v in checked if v.check == "targets"] in ([], ["pass"])
        assert watched["loop: labels"].status == "pass"


@pytest.mark.slow  # seconds each
def test_a_batch_of_background_images_padded_with_the_void_label_is_not_a_0_255_mask():
    """Defect-free images (background only) padded to the crop size with 255, as segmentation crops are: the
    batch holds one class beside padding, not a foreground stored as 255; a 0/255 mask padded alike still is."""
    torch.manual_seed(0)
    x, mask = _images(32)
    background = torch.zeros_like(mask)
    background[:, 12:, :] = 255  # padded at the bottom and right to 16 x 16
    background[:, :, 13:] = 255
    model = TinyUNet()
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    checked = doctor.check(model, x, background, loss_fn)
    assert [v.status for v in checked if v.check == "targets"] in ([], ["pass"])
    png = torch.where(background == 255, 255, mask * 255)
    assert doctor.check(model, x, png, loss_fn)["targets"].status == "warn"
