"""The preprocessing estimators fit on the data a user's DataLoader or Dataset feeds (batches of (x, y) pairs,
dicts, or inputs alone), with the same statistics as on the stacked tensor; transforms take a batch."""
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from trainwell.data.preprocess import PCA, Standardize

g = torch.Generator().manual_seed(0)
X = torch.randn(120, 3, 4, 4, generator=g) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 2
Y = torch.randint(0, 2, (120,), generator=g)


class ImageDicts(Dataset):
    def __len__(self):
        return len(X)

    def __getitem__(self, i):
        return {"image": X[i], "label": Y[i]}


class Stream(IterableDataset):
    def __iter__(self):
        return iter(zip(X, Y, strict=True))


@pytest.mark.parametrize("data", [
    DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1)),
    TensorDataset(X, Y), TensorDataset(X), ImageDicts(), DataLoader(ImageDicts(), batch_size=50),
    DataLoader(Stream(), batch_size=16)], ids=["loader", "dataset", "inputs only", "dicts", "dict loader", "stream"])
def test_standardize_fits_on_what_the_loader_feeds(data):
    ours = Standardize().fit(data)
    oracle = StandardScaler().fit(X.flatten(1).numpy())
    assert ours.feature_shape_ == (3, 4, 4)
    np.testing.assert_allclose(ours.mean_.numpy(), oracle.mean_, atol=1e-6)
    np.testing.assert_allclose(ours.scale_.numpy(), oracle.scale_, rtol=1e-5)
    for xb, _ in DataLoader(TensorDataset(X, Y), batch_size=40):  # transforms batch by batch in the user's loop
        np.testing.assert_allclose(ours.transform(xb).flatten(1).numpy(),
                                   oracle.transform(xb.flatten(1).numpy()), atol=1e-5)


def test_pca_fits_on_a_loader_as_sklearn_on_the_stacked_inputs():
    ours = PCA(n_components=4).fit(DataLoader(TensorDataset(X, Y), batch_size=25))
    oracle = SkPCA(n_components=4).fit(X.flatten(1).numpy())
    np.testing.assert_allclose(ours.explained_variance_.numpy(), oracle.explained_variance_, rtol=1e-4)


def test_transforming_a_loader_is_refused_in_one_line():
    pre = Standardize().fit(X)
    with pytest.raises(TypeError, match=r"^Standardize transforms a batch's inputs, not a DataLoader: call it on "
                                        r"each batch"):
        pre.transform(DataLoader(TensorDataset(X, Y), batch_size=8))


def test_an_empty_loader_is_refused():
    empty = DataLoader(TensorDataset(torch.empty(0, 3), torch.empty(0)), batch_size=8)
    with pytest.raises(ValueError, match=r"^Standardize.fit: the DataLoader holds no example"):
        Standardize().fit(empty)


@pytest.mark.parametrize("listed", [
    lambda: list(DataLoader(TensorDataset(X, Y), batch_size=32)),          # (x, y) batches, the last one short
    lambda: list(DataLoader(TensorDataset(X), batch_size=32)),             # [xb]: inputs alone
    lambda: [{"image": X[i : i + 50], "label": Y[i : i + 50]} for i in range(0, 120, 50)],
    lambda: [(X[i], Y[i]) for i in range(len(X))],                         # a dataset's items: stacked
    lambda: [(X[i].numpy(), int(Y[i])) for i in range(len(X))],
], ids=["pairs", "inputs alone", "dicts", "items", "numpy items"])
def test_a_list_of_batches_or_items_fits_as_the_concatenated_inputs(listed):
    oracle = StandardScaler().fit(X.reshape(len(X), -1).numpy())
    pre = Standardize().fit(listed())
    assert pre.feature_shape_ == (3, 4, 4)
    np.testing.assert_allclose(pre.mean_.numpy(), oracle.mean_, rtol=1e-6)
    np.testing.assert_allclose(pre.scale_.numpy(), oracle.scale_, rtol=1e-6)
    pca = PCA(n_components=3).fit(listed())
    sk = SkPCA(n_components=3).fit(X.reshape(len(X), -1).numpy())
    np.testing.assert_allclose(pca.explained_variance_.numpy(), sk.explained_variance_, rtol=1e-5)


def test_a_list_of_bare_tensors_is_refused_in_one_line_that_names_cat_and_stack():
    with pytest.raises(ValueError) as err:
        Standardize().fit([X[:60], X[60:]])
    message = str(err.value)
    assert "list of 2 arrays of shape (60, 3, 4, 4)" in message and "torch.cat" in message
    assert "torch.stack" in message and len(message.splitlines()) == 1
    rows = [[1.0, 2.0], [3.0, 5.0]]  # a list of rows stays scikit-learn's reading
    np.testing.assert_allclose(Standardize().fit(rows).mean_.numpy(), StandardScaler().fit(rows).mean_)
