import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.cli import main
from trainwell.cnn import conv, filters
from trainwell.cnn.equivariance import probe, rotation_equivariance, shift_equivariance
from trainwell.cnn.geometry import GeometryError, same_padding
from trainwell.cnn.neocognitron import AddIfSilentLayer
from trainwell.cnn.summary import summarize, totals
from trainwell.nn.pool import GaussianPool, L2Pool


def test_alexnet_conv1_numbers_from_the_lecture():
    (row,) = summarize(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227))
    assert row.output_shape == (96, 55, 55)
    assert row.neurons == 290_400
    assert row.params_unshared == 105_705_600  # 290,400 neurons x (11*11*3 + 1)
    assert row.params == 34_944  # 96 x 364
    assert row.receptive_field == (11, 11)
    assert row.mult_adds == 290_400 * 363


@pytest.mark.parametrize("c", [8, 32])
def test_three_3x3_layers_vs_one_7x7(c):
    stack = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)])
    single = nn.Conv2d(c, c, 7, padding=3, bias=False)
    rows3, rows1 = summarize(stack, (c, 16, 16)), summarize(single, (c, 16, 16))
    assert totals(rows3)["params"] == 27 * c * c and totals(rows1)["params"] == 49 * c * c
    assert rows3[-1].receptive_field == rows1[-1].receptive_field == (7, 7)


def test_receptive_field_grows_with_stride_and_pooling():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.MaxPool1d(2), nn.Conv1d(4, 4, 3), nn.Flatten(), nn.Linear(4 * 7, 2))
    rows = summarize(model, (1, 20))
    assert [r.receptive_field for r in rows[:3]] == [(3,), (4,), (8,)]
    assert rows[-1].receptive_field == (20,)  # a dense layer sees everything
    assert rows[-1].params == rows[-1].params_unshared == 4 * 7 * 2 + 2


def test_same_padding():
    assert same_padding(3) == 1 and same_padding(7) == 3
    with pytest.raises(GeometryError, match="odd filter"):
        same_padding(4)
    with pytest.raises(GeometryError, match="stride 1"):
        same_padding(3, S=2)


def test_convolve1d_matches_numpy():
    x, w = torch.randn(7, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    np.testing.assert_allclose(conv.convolve1d(x, w).numpy(), np.convolve(x.numpy(), w.numpy()), atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_explicit_2d_convolution_equals_torch(seed):
    g = torch.Generator().manual_seed(seed)
    c, d = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g))
    f = int(torch.randint(1, 4, (1,), generator=g))
    stride, padding = int(torch.randint(1, 3, (1,), generator=g)), int(torch.randint(0, 2, (1,), generator=g))
    size = f + stride * int(torch.randint(1, 5, (1,), generator=g)) - 2 * padding
    size = max(size, f)
    while (size - f + 2 * padding) % stride:
        size += 1
    x = torch.randn(2, c, size, size + stride, generator=g, dtype=torch.float64)
    w = torch.randn(d, c, f, f, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, w, b, stride=stride, padding=padding)
    for impl in (conv.conv2d_loop, conv.conv2d_unfold):
        assert torch.allclose(impl(x, w, b, stride=stride, padding=padding), ref, atol=1e-10)
    flipped = F.conv2d(x, torch.flip(w, dims=(2, 3)), b, stride=stride, padding=padding)
    assert torch.allclose(conv.conv2d_unfold(x, w, b, stride=stride, padding=padding, flip=True), flipped)


@pytest.mark.parametrize("stride, padding, f", [(1, 0, 3), (2, 1, 4), (3, 2, 5)])
def test_explicit_1d_convolution_equals_torch(stride, padding, f):
    length = 20 + (-(20 - f + 2 * padding)) % stride
    x, w, b = torch.randn(3, 2, length), torch.randn(4, 2, f), torch.randn(4)
    ref = F.conv1d(x, w, b, stride=stride, padding=padding)
    assert torch.allclose(conv.conv1d_loop(x, w, b, stride, padding), ref, atol=1e-5)
    assert torch.allclose(conv.conv1d_unfold(x, w, b, stride, padding), ref, atol=1e-5)
    assert torch.allclose(conv.conv1d_unfold(x[0], w, None, stride, padding, flip=True),
                          F.conv1d(x[:1], torch.flip(w, dims=(2,)), None, stride, padding)[0], atol=1e-5)


def test_convolution_flips_the_kernel_and_cross_correlation_does_not():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # an impulse: convolution reproduces the kernel, correlation its 180-degree rotation
    k = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert torch.equal(conv.conv2d_unfold(x, k, padding=1, flip=True)[0, 0, 1:4, 1:4], k[0, 0])
    assert torch.equal(conv.conv2d_unfold(x, k, padding=1)[0, 0, 1:4, 1:4], torch.flip(k[0, 0], dims=(0, 1)))


def test_explicit_conv_rejects_impossible_geometry():
    with pytest.raises(GeometryError, match="not an integer"):
        conv.conv2d_loop(torch.randn(1, 1, 10, 10), torch.randn(1, 1, 3, 3), stride=2)


def test_classic_filters():
    assert torch.allclose(filters.box(3).sum(), torch.tensor(1.0))
    for sigma in (1, 2, 4):
        g = filters.gaussian(sigma)
        assert torch.allclose(g.sum(), torch.tensor(1.0)) and torch.equal(g, g.T)
        r = torch.arange(g.shape[0]) - g.shape[0] // 2
        var = float((g.sum(1) * r**2).sum())
        assert var == pytest.approx(sigma**2, rel=0.02)
    const = torch.full((10, 10), 3.0)
    assert torch.allclose(filters.apply(const, filters.sharpen()), const, atol=1e-5)  # 2I - box keeps flat areas
    assert torch.allclose(filters.apply(const, filters.box(5)), const, atol=1e-5)
    ramp = torch.arange(8.0).repeat(6, 1)  # increases by 1 along x
    dx, dy = filters.apply(ramp, filters.derivative_x()), filters.apply(ramp, filters.derivative_y())
    assert torch.allclose(dx[:, :-1].abs(), torch.ones(6, 7)) and torch.allclose(dy, torch.zeros(6, 8))


def test_sample_photo_and_filter_figure(tmp_path):
    photo = filters.sample_photo(64)
    assert photo.shape == (64, 64) and 0 <= float(photo.min()) < float(photo.max()) <= 1
    blurred = filters.apply(photo, filters.gaussian(2))
    assert float(blurred.var()) < float(photo.var())  # smoothing removes variance
    from sklearn.datasets import load_digits

    digit = torch.tensor(load_digits().images[0], dtype=torch.float32)
    filters.figure({"photo": photo, "digit": digit}, tmp_path / "filters.png")
    assert (tmp_path / "filters.png").stat().st_size > 1000


def test_pooling_layers():
    x = torch.randn(2, 3, 8, 8)
    # the lecture's L2 pooling (Goodfellow sec. 9.3) is torch's LPPool with p = 2: root of the sum of squares
    assert torch.allclose(L2Pool(2)(x), nn.LPPool2d(2, 2)(x), atol=1e-5)
    assert torch.allclose(L2Pool(3, 2)(x), nn.LPPool2d(2, 3, 2)(x), atol=1e-5)
    assert torch.allclose(L2Pool(2)(x[..., 0, :]), nn.LPPool1d(2, 2)(x[..., 0, :]), atol=1e-5)
    assert torch.allclose(L2Pool(2, rms=True)(x), torch.sqrt(F.avg_pool2d(x**2, 2)), atol=1e-5)
    zeros = torch.zeros(1, 1, 4, 4, requires_grad=True)
    out = L2Pool(2)(zeros)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(1, 1, 2, 2)) and torch.equal(zeros.grad, torch.zeros(1, 1, 4, 4))
    const = torch.full((1, 2, 6, 6), 5.0)
    assert torch.allclose(GaussianPool(3, sigma=1.0)(const), torch.full((1, 2, 2, 2), 5.0))
    impulse = torch.zeros(1, 1, 3, 3)
    impulse[0, 0, 1, 1] = 1.0
    centre = GaussianPool(3, sigma=1.0)(impulse).item()
    impulse2 = torch.zeros(1, 1, 3, 3)
    impulse2[0, 0, 0, 0] = 1.0
    assert centre > GaussianPool(3, sigma=1.0)(impulse2).item()  # the centre weighs most


def test_pool_kinds_in_the_block_spec():
    from trainwell.config import ModelConfig
    from trainwell.nn.models import build_model

    blocks = [{"type": "conv", "channels": 4, "kernel": 3, "padding": 1}, {"type": "pool", "kind": "l2"},
              {"type": "pool", "kind": "rms", "kernel": 1}, {"type": "pool", "kind": "gaussian", "kernel": 2,
                                                               "sigma": 0.5}]
    m = build_model(ModelConfig(kind="cnn", blocks=blocks), (1, 8, 8), 3)
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    assert [(type(p).__name__, getattr(p, "rms", None)) for p in m[2:4]] == [("L2Pool", False), ("L2Pool", True)]


def test_equivariance_probe():
    photo = filters.sample_photo(64)[None, None]
    layer = nn.Conv2d(1, 4, 5, padding=2, bias=False)
    assert shift_equivariance(layer, photo) < 1e-5
    assert rotation_equivariance(layer, photo) > 0.1
    result = probe(photo)
    assert result["conv+pool change under a 1-pixel shift"] < result["conv change under a 1-pixel shift"]


def digits_images(n=60):
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().images[:n], dtype=torch.float32) / 16.0


def test_add_if_silent_new_plane_responds_one_to_its_patch():
    layer = AddIfSilentLayer(kernel=3, threshold=0.5)
    image = torch.zeros(1, 5, 5)
    image[0, 1:4, 1:4] = torch.arange(9.0).reshape(3, 3)
    assert layer.learn(image) >= 1
    response = layer.s_response(image)
    assert float(response[0, 0, 1, 1]) == pytest.approx(1.0, abs=1e-5)


def test_after_add_if_silent_no_active_patch_is_silent_and_planes_are_frozen():
    images = digits_images()
    layer = AddIfSilentLayer(kernel=3, threshold=0.7)
    layer.learn(images)
    planes = layer.planes.clone()
    s = layer.similarity(images)  # (N, planes, L)
    _, norms, _ = layer._patches(images)
    active = norms > layer.min_norm
    covered = (s > layer.learn_threshold).any(dim=1)
    assert bool(covered[active].all())
    assert layer.learn(images) == 0 and torch.equal(layer.planes, planes)  # nothing new, nothing updated
    out = layer(images)
    assert out.shape[:2] == (len(images), layer.n_planes) and out.shape[-1] == 3  # 6x6 S-grid -> 3x3 C-grid


def test_higher_learning_threshold_creates_more_planes():
    images = digits_images(30)
    counts = []
    for theta in (0.5, 0.7, 0.9):
        layer = AddIfSilentLayer(kernel=3, threshold=0.5, learn_threshold=theta)
        layer.learn(images)
        counts.append(layer.n_planes)
    assert counts[0] < counts[1] < counts[2]


def test_summary_cli_on_every_example_config_and_errors(capsys):
    from pathlib import Path

    for path in sorted((Path(__file__).parents[2] / "configs").glob("*.toml")):
        assert main(["summary", str(path)]) == 0, path
    capsys.readouterr()
    assert main(["summary", "--input-shape", "3,227,227", "--json", "--set",
                 "model.blocks=[{type='conv', channels=96, kernel=11, stride=4}]"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert rows[0]["neurons"] == 290_400 and rows[0]["params_unshared"] == 105_705_600
    odd = ["summary", "--input-shape", "1,10", "--set", "model.blocks=[{type='conv', channels=2, kernel=3, stride=2}]"]
    assert main(odd) == 0
    assert "0 (Conv1d): the last 1 along axis 0 of its input never seen" in capsys.readouterr().out
    assert main([*odd, "--set", "model.geometry=strict"]) == 2
    assert "(10-3+2*0)/2+1 = 4.5 is not an integer" in capsys.readouterr().err
    assert main(["summary", "--input-shape", "3,x"]) == 2


RESNET_STEM = ["model.kind=cnn", "model.blocks=[{type='conv', channels=4, kernel=7, stride=2, padding=3}, "
               "{type='pool', kind='max', kernel=3, stride=2, padding=1}]"]


def test_torch_floor_geometry_is_the_default_and_warns_only_when_input_is_lost():
    from trainwell.config import load_config
    from trainwell.nn.models import build_model
    from trainwell.pipeline import geometry_verdict

    cfg = load_config(None, RESNET_STEM)
    model = build_model(cfg.model, (3, 224, 224), 10)  # a ResNet stem: (224-7+6)/2+1 = 112.5
    ref = nn.Conv2d(3, 4, 7, stride=2, padding=3)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)
    assert ref(torch.zeros(1, 3, 224, 224)).shape[-1] == 112  # torch floors the same way
    # the floored row is zero padding: every input pixel reaches the output, so no false alarm
    assert geometry_verdict(model, (3, 224, 224)).status == "pass"
    lossy = load_config(None, ["model.kind=cnn", "model.blocks=[{type='conv', channels=4, kernel=3, stride=2}]"])
    v = geometry_verdict(build_model(lossy.model, (1, 10, 10), 10), (1, 10, 10))
    assert v.status == "warn" and "0 (Conv2d): the last 1 along axis 0, 1 along axis 1" in v.value
    tiled = load_config(None, ["model.kind=cnn", "model.blocks=[{type='conv', channels=4, kernel=3, padding=1}]"])
    assert geometry_verdict(build_model(tiled.model, (1, 8, 8), 10), (1, 8, 8)).status == "pass"


def test_strict_geometry_is_an_error():
    from trainwell.cnn.geometry import GeometryError
    from trainwell.config import load_config
    from trainwell.nn.models import build_model

    cfg = load_config(None, RESNET_STEM + ["model.geometry=strict"])
    with pytest.raises(GeometryError, match=r"\(224-7\+2\*3\)/2\+1 = 112.5 is not an integer"):
        build_model(cfg.model, (3, 224, 224), 10)


@pytest.mark.parametrize(("border", "scipy_mode"), [("replicate", "nearest"), ("reflect", "mirror"),
                                                    ("zeros", "constant")])
def test_filter_borders_match_scipy(border, scipy_mode):
    from scipy import ndimage

    g = torch.Generator().manual_seed(0)
    image, kernel = torch.rand(9, 11, generator=g), torch.rand(3, 5, generator=g)  # asymmetric: flipping shows
    ours = filters.apply(image, kernel, border=border)
    oracle = ndimage.convolve(image.double().numpy(), kernel.double().numpy(), mode=scipy_mode, cval=0.0)
    np.testing.assert_allclose(ours.numpy(), oracle, atol=1e-5)


def test_filter_border_errors():
    with pytest.raises(ValueError, match="border='wrap' is not allowed"):
        filters.apply(torch.rand(8, 8), filters.box(3), border="wrap")
    with pytest.raises(ValueError, match="border='reflect' cannot pad"):
        filters.apply(torch.rand(8, 8), filters.gaussian(4), border="reflect")
    assert filters.apply(torch.rand(8, 8), filters.gaussian(4)).shape == (8, 8)  # replicate pads any size


def _unseen_by_autograd(w: int, f: int, s: int, p: int) -> int:
    """Trailing input positions whose gradient is exactly zero through a conv with positive weights."""
    x = torch.rand(1, 1, w, dtype=torch.float64, requires_grad=True)
    conv = torch.nn.Conv1d(1, 1, f, stride=s, padding=p, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    conv(x + 1.0).sum().backward()
    seen = (x.grad[0, 0] != 0).tolist()
    return len(seen) - (max(i for i, v in enumerate(seen) if v) + 1)


def test_unseen_rows_agree_with_autograd_and_padding_is_not_input():
    from trainwell.cnn.summary import _unseen

    for w in range(5, 13):
        for f in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in range(0, 3):
                    if w + 2 * p < f or f < s:  # f < s skips rows between windows too: not a floor effect
                        continue
                    assert _unseen((w,), (f,), (s,), (p,)) == (_unseen_by_autograd(w, f, s, p),), (w, f, s, p)
    # the ResNet stem on 224: 7x7, stride 2, padding 3 sees every input pixel (torch floors one padded row away)
    assert _unseen((224, 224), (7, 7), (2, 2), (3, 3)) == (0, 0)
    stem = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3)
    from trainwell.cnn.summary import floored_layers, summarize

    assert floored_layers(summarize(torch.nn.Sequential(stem), (3, 224, 224))) == []
