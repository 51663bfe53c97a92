"""Fukushima's add-if-silent learning (cnn/neocognitron.py)."""

import pytest
import torch

from trainwell.cnn.neocognitron import AddIfSilentLayer


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
