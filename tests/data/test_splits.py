"""The validation split (data/splits.py): disjoint, deterministic and seeded."""

import torch

from trainwell.data import load


def test_validation_split_is_disjoint_deterministic_and_seeded():
    a, b, c = load("digits", seed=0), load("digits", seed=0), load("digits", seed=1)
    assert torch.equal(a.val[0], b.val[0])
    assert not torch.equal(a.val[0], c.val[0])
    train_rows = {tuple(r.tolist()) for r in a.train[0].reshape(len(a.train[0]), -1)}
    val_rows = [tuple(r.tolist()) for r in a.val[0].reshape(len(a.val[0]), -1)]
    # digits has a few exact duplicate images; nearly all validation rows must be unseen
    assert sum(r in train_rows for r in val_rows) < 0.05 * len(val_rows)
    assert a.meta.input_shape == (1, 8, 8) and float(a.train[0].max()) <= 1.0
