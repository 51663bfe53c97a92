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


@pytest.mark.parametrize(("call", "message"), [
    (lambda x, s, g: augment.gaussian_noise(x, float("nan"), g), "std=nan"),
    (lambda x, s, g: augment.gaussian_noise(x, -0.3, g), "std=-0.3"),
    (lambda x, s, g: augment.augment_signal(s, g, scale=1.5), r"scale=1.5 .* \[0, 1\)"),
    (lambda x, s, g: augment.augment_signal(s, g, scale=-0.1), "scale=-0.1"),
    (lambda x, s, g: augment.augment_signal(s, g, shift=-2), "shift=-2 .* whole number"),
    (lambda x, s, g: augment.augment_signal(s, g, shift=2.5), "shift=2.5"),
    (lambda x, s, g: augment.augment_signal(s, g, noise=-1), "noise=-1"),
    (lambda x, s, g: augment.augment_image(x, g, crop_padding=-1), "crop_padding=-1"),
    (lambda x, s, g: augment.augment_image(x, g, noise=float("inf")), "noise=inf"),
    (lambda x, s, g: augment.build("signal", input_noise=-0.1), "input_noise=-0.1"),
])
def test_amounts_outside_their_range_are_refused_in_one_line(call, message):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=message):
        call(torch.randn(4, 3, 8, 8), torch.randn(4, 2, 16), g)


def test_every_scaled_signal_keeps_its_sign_and_a_whole_float_shift_is_read_as_positions():
    s = torch.rand(500, 1, 16) + 0.5  # a user's positive signals
    out = augment.augment_signal(s, torch.Generator().manual_seed(0), shift=0, scale=0.9)
    factors = out[:, 0, 0] / s[:, 0, 0]  # the oracle: one factor per signal, drawn in [1 - scale, 1 + scale]
    assert torch.allclose(out, s * factors[:, None, None], atol=1e-6)
    assert float(factors.min()) >= 0.1 - 1e-6 and float(factors.max()) <= 1.9 + 1e-6
    x = torch.randn(2, 3, 8, 8)
    a = augment.augment_image(x, torch.Generator().manual_seed(1), shift=2.0)
    assert torch.equal(a, augment.augment_image(x, torch.Generator().manual_seed(1), shift=2))
