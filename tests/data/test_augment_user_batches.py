"""Augmentation of a user's own batches through ``Trainer(augment=...)``: uint8 pixels are refused before the
noise wraps around in their dtype (it used to give values such as 1375 for a pixel of 100), and grayscale
images without their channel axis are named with the fix; float batches are augmented as the formula says."""
import pytest
import torch
from torch import nn

from trainwell.data import augment
from trainwell.train import Trainer


class TinyCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(1, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def test_noise_on_uint8_pixels_is_refused_with_the_conversion():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match=r"^augment inputs are uint8, and Gaussian noise is added in floating point: "
                                        r"convert them \(x.float\(\) / 255 for 0..255 pixels\)$"):
        augment.gaussian_noise(torch.full((2, 1, 4, 4), 100, dtype=torch.uint8), 5.0, g)


def test_noise_on_float_pixels_has_the_given_spread():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200, 1, 8, 8), 0.5)
    assert (augment.gaussian_noise(x, 0.1, g) - x).std().item() == pytest.approx(0.1, rel=0.05)


def test_images_without_their_channel_axis_are_named_in_the_users_fit():
    torch.manual_seed(0)
    model = TinyCnn()
    flip = augment.build("image", crop_padding=1, flip=True)
    x, y = torch.rand(16, 8, 8), torch.randint(0, 2, (16,))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8, augment=flip)
    with pytest.raises(ValueError, match=r"^augment_image takes a batch of images \(N, C, H, W\), got shape "
                                         r"\(8, 8, 8\): add the channel axis, x.unsqueeze\(1\)$"):
        trainer.fit((x, y))
    assert len(trainer.fit((x.unsqueeze(1), y)).history) == 1


def test_a_flip_is_the_mirror_image():
    g = torch.Generator().manual_seed(3)
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    out = augment.augment_image(x, g, flip=True)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
