"""The watch's per-step test for NaN/Inf in a training batch (on a CPU): a sum in the batch's own precision,
confirmed in float64 when it is not finite, against torch.isfinite."""

import pytest
import torch

from trainwell.doctor.loop_forward_hooks import nonfinite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_nan_or_inf_anywhere_is_found_as_isfinite_finds_it(dtype):
    g = torch.Generator().manual_seed(0)
    for bad in (float("nan"), float("inf"), float("-inf"), None):
        x = torch.randn(32, 3, 8, 8, generator=g).to(dtype)
        if bad is not None:
            x[17, 2, 5, 1] = bad
        assert nonfinite(x) == (not bool(torch.isfinite(x).all()))
    both = torch.zeros(4, dtype=dtype)
    both[0], both[1] = float("inf"), float("-inf")  # their sum is NaN: still not finite
    assert nonfinite(both)


def test_a_sum_that_overflows_the_dtype_is_not_taken_for_inf():
    assert not nonfinite(torch.full((8,), 3e38))  # float32: each finite, the sum overflows
    assert not nonfinite(torch.full((64, 28, 28), 255.0, dtype=torch.float16))  # raw pixels in half precision
