"""The dropout layers (nn/dropout.py): their signatures, and torch's ``p`` and bad arguments named in one line."""

import numpy as np
import pytest
import torch

from trainwell.nn.dropout import DropActivation, Dropout, Uout, dropout


@pytest.mark.parametrize(("make", "owner"), [(lambda: Dropout(p=0.2), "Dropout"),
                                             (lambda: dropout(torch.ones(3), p=0.2), "dropout"),
                                             (lambda: DropActivation(p=0.2), "DropActivation")])
def test_torchs_p_is_refused_in_one_line_that_gives_keep_prob(make, owner):
    with pytest.raises(TypeError) as err:
        make()
    assert str(err.value) == f"trainwell's {owner} takes keep_prob (= 1 - torch's p): keep_prob=0.8"


def test_dropout_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"keep_prob=1.5 is not allowed"):
        Dropout(keep_prob=1.5)
    with pytest.raises(ValueError, match=r"mode='gaussian' is not allowed"):
        Dropout(keep_prob=0.5, mode="gaussian")
    with pytest.raises(TypeError, match=r"keep_prob='0.5'"):
        Dropout(keep_prob="0.5")


@pytest.mark.parametrize(("make", "owner"), [(lambda: Dropout(0.2), "Dropout"),
                                             (lambda: dropout(torch.ones(3), 0.2), "dropout"),
                                             (lambda: DropActivation(0.2), "DropActivation")])
def test_a_bare_keep_probability_is_refused_since_torch_reads_it_as_the_drop_probability(make, owner):
    with pytest.raises(TypeError) as err:
        make()
    assert str(err.value) == (f"trainwell's {owner} takes keep_prob by name: {owner}(keep_prob=0.2) keeps 20% of "
                              f"the units, torch's nn.Dropout(0.2) drops 20%")


def test_drop_activation_signatures():
    torch.manual_seed(0)
    x = torch.randn(500)
    layer = DropActivation(keep_prob=0.7)
    mean_train = torch.stack([layer(x) for _ in range(4000)]).mean(0)
    layer.eval()
    assert torch.allclose(mean_train, layer(x), atol=0.05)  # average of training passes ~ test pass
    assert torch.allclose(layer(x), torch.where(x > 0, x, 0.3 * x))  # leaky ReLU with slope 1 - keep
    layer.train()
    assert torch.equal(DropActivation(keep_prob=1.0)(x), torch.relu(x))
    assert torch.equal(DropActivation(keep_prob=0.0)(x), x)


@pytest.mark.parametrize("keep", [np.float32(0.8), np.float64(0.8), torch.tensor(0.8), torch.tensor([0.8])])
def test_numpy_and_torch_scalars_are_numbers_as_floats_are(keep):
    """A keep probability from NumPy or a scalar tensor means what the float means: the same masks and outputs."""
    x = torch.ones(2000)
    ours, ref = Dropout(keep_prob=keep), Dropout(keep_prob=float(keep))
    assert ours.keep_prob == ref.keep_prob and isinstance(ours.keep_prob, float)
    torch.manual_seed(0)
    a = ours(x)
    torch.manual_seed(0)
    assert torch.equal(a, ref(x))
    assert torch.equal(dropout(x, keep_prob=keep, training=False, mode="vanilla"), x * float(keep))
    assert DropActivation(keep_prob=keep).keep_prob == float(keep)


@pytest.mark.parametrize("keep", [True, np.bool_(True), torch.tensor(True), torch.tensor([0.5, 0.8]), "0.8"])
def test_a_bool_or_a_non_scalar_is_no_keep_probability(keep):
    with pytest.raises(TypeError, match=r"^keep_prob=.* is not allowed: use a number in \(0, 1\]$"):
        Dropout(keep_prob=keep)


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool])
@pytest.mark.parametrize("layer", [Dropout(keep_prob=0.8), Dropout(keep_prob=0.8, mode="vanilla"),
                                   DropActivation(keep_prob=0.9), Uout(0.1)], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("training", [True, False])
def test_integer_inputs_are_refused_in_one_line_in_both_modes(layer, dtype, training):
    layer.train(training)
    x = torch.ones(4, 3, dtype=dtype)
    with pytest.raises(TypeError) as err:
        layer(x)
    message = str(err.value)
    assert f"dtype {str(dtype).removeprefix('torch.')} (shape (4, 3))" in message and "x.float()" in message
    assert len(message.splitlines()) == 1
    with torch.no_grad():  # the oracle: the same values as floats pass, with the same shape
        assert layer(x.float()).shape == x.shape
