"""Readers sharing one RowKeys gather a batch once: the same unchanged tensor gets the same reading; a batch
changed in place, or another tensor, is read again (its keys those of a fresh RowKeys)."""

import torch

from trainwell.doctor.validation_rows import RowKeys


def _keys(read):
    return read[1]()[0]


def test_an_unchanged_batch_is_read_once_and_a_changed_one_again():
    shared, fresh = RowKeys(), RowKeys()
    x = torch.randn(8, 5)
    first = shared.deferred(x)
    assert shared.deferred(x) is first
    x.mul_(2)  # the training loop normalizes its batch in place: its rows are other rows now
    again = shared.deferred(x)
    assert again is not first
    assert torch.equal(_keys(again), _keys(fresh.deferred(x.clone())))
    assert not torch.equal(_keys(again), _keys(first))
    y = x.clone()  # equal values, another tensor: read on its own, to the same keys
    assert shared.deferred(y) is not again and torch.equal(_keys(shared.deferred(y)), _keys(again))


def test_inference_tensors_are_read_without_a_version_counter():
    with torch.inference_mode():
        x = torch.randn(4, 3)
    keys = RowKeys()
    assert torch.equal(_keys(keys.deferred(x)), _keys(keys.deferred(x)))
