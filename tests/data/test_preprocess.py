import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.preprocessing import StandardScaler

from trainwell.data.preprocess import PCA, ZCA, MeanCenter, NotFittedError, Standardize


@pytest.fixture
def correlated():
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[2.0, 0.5, 0.0, 0.1], [0.0, 1.0, 0.3, 0.0], [0.0, 0.0, 0.5, 0.2], [0.0, 0.0, 0.0, 0.05]])
    return torch.randn(400, 4, generator=g) @ mix + torch.tensor([1.0, -2.0, 3.0, 0.5])


@pytest.mark.parametrize("cls", [MeanCenter, Standardize, PCA, ZCA])
def test_transform_before_fit_raises(cls, correlated):
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().transform(correlated)


def test_mean_center_and_standardize_match_sklearn(correlated):
    x = correlated.numpy().astype(np.float64)
    sk = StandardScaler().fit(x)
    ours = Standardize().fit(correlated)
    np.testing.assert_allclose(ours.mean_.numpy(), sk.mean_, rtol=1e-6)
    np.testing.assert_allclose(ours.scale_.numpy(), sk.scale_, rtol=1e-6)
    np.testing.assert_allclose(ours.transform(correlated).numpy(), sk.transform(x), atol=1e-5)
    centered = MeanCenter().fit_transform(correlated)
    assert torch.allclose(centered.mean(0), torch.zeros(4), atol=1e-5)


def test_standardize_leaves_constant_features_finite():
    x = torch.cat([torch.randn(50, 1), torch.full((50, 1), 3.0)], dim=1)
    out = Standardize().fit_transform(x)
    assert torch.isfinite(out).all() and torch.allclose(out[:, 1], torch.zeros(50))


@pytest.mark.parametrize("k", [None, 2])
def test_pca_matches_sklearn_up_to_sign(correlated, k):
    x = correlated.numpy().astype(np.float64)
    sk = SkPCA(n_components=k).fit(x)
    ours = PCA(n_components=k).fit(correlated)
    np.testing.assert_allclose(ours.explained_variance_.numpy(), sk.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(ours.explained_variance_ratio_.numpy(), sk.explained_variance_ratio_, rtol=1e-6)
    ours_c, sk_c = ours.components_.numpy(), sk.components_
    signs = np.sign((ours_c * sk_c).sum(axis=1))
    np.testing.assert_allclose(ours_c * signs[:, None], sk_c, atol=1e-6)
    np.testing.assert_allclose(ours.transform(correlated).numpy() * signs, sk.transform(x), atol=1e-4)


def test_pca_whitening_gives_identity_covariance_and_divides_by_sqrt_lambda_plus_eps(correlated):
    z = PCA(whiten=True, eps=1e-9).fit_transform(correlated).double()
    assert torch.allclose(torch.cov(z.T), torch.eye(4, dtype=torch.float64), atol=1e-3)
    pca = PCA(whiten=True, eps=1e-5).fit(correlated)
    z = pca.transform(correlated).double()
    raw = PCA().fit(correlated).transform(correlated).double()
    expected = raw / torch.sqrt(pca.explained_variance_ + 1e-5)
    assert torch.allclose(z, expected, atol=1e-4)


def test_zca_whitens_in_the_input_basis(correlated):
    zca = ZCA(eps=1e-9).fit(correlated)
    z = zca.transform(correlated).double()
    assert torch.allclose(torch.cov(z.T), torch.eye(4, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(zca.whitening_, zca.whitening_.T)  # symmetric: a rotation back to the input axes
    # of all whitening transforms, ZCA keeps the output closest to the (centered) input
    pca_z = PCA(whiten=True, eps=1e-9).fit_transform(correlated).double()
    centered = (correlated - correlated.mean(0)).double()
    scale = centered.std(0)
    assert ((z - centered / scale) ** 2).sum() < ((pca_z - centered / scale) ** 2).sum()


@pytest.mark.parametrize("make", [MeanCenter, Standardize, lambda: PCA(), lambda: PCA(whiten=True), ZCA])
def test_inverse_transform_round_trips(make, correlated):
    pre = make().fit(correlated)
    back = pre.inverse_transform(pre.transform(correlated))
    assert torch.allclose(back, correlated, atol=1e-4)


def test_images_keep_their_shape_and_fewer_samples_than_features_work():
    x = torch.randn(10, 1, 4, 4)
    zca = ZCA().fit(x)
    out = zca.transform(x)
    assert out.shape == x.shape
    assert torch.allclose(zca.inverse_transform(out), x, atol=1e-4)
    assert PCA(n_components=3).fit_transform(x).shape == (10, 3)


def test_fit_on_train_only_then_apply_to_other_splits():
    train = torch.randn(200, 3) + 5.0
    test = torch.randn(100, 3) - 5.0
    pre = MeanCenter().fit(train)
    assert torch.allclose(pre.transform(test).mean(0), torch.full((3,), -10.0), atol=0.5)
    with pytest.raises(ValueError, match="fitted on features of shape"):
        pre.transform(torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"PCA\(n_components=9\)"):
        PCA(n_components=9).fit(train)


ESTIMATORS = [MeanCenter(), Standardize(), PCA(), PCA(n_components=1, whiten=True), ZCA()]


@pytest.mark.parametrize("est", ESTIMATORS, ids=repr)
def test_sklearn_check_estimator_passes(est):
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that it skips its array-API check
        check_estimator(est)


def test_usable_in_an_sklearn_pipeline_like_sklearns_own(correlated):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x = correlated.numpy().astype(np.float64)
    y = (x[:, 0] + x[:, 1] > np.median(x[:, 0] + x[:, 1])).astype(int)
    ours = make_pipeline(Standardize(), PCA(n_components=2), LogisticRegression()).fit(x, y)
    theirs = make_pipeline(StandardScaler(), SkPCA(n_components=2), LogisticRegression()).fit(x, y)
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))
    assert ours.score(x, y) == theirs.score(x, y) > 0.9
    assert list(ours[:-1].get_feature_names_out()) == ["pca0", "pca1"]


def test_get_set_params_and_clone():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError as SkNotFittedError
    from sklearn.utils.validation import check_is_fitted

    pca = PCA(n_components=3, whiten=True, eps=1e-3)
    assert pca.get_params() == {"n_components": 3, "whiten": True, "eps": 1e-3}
    assert pca.set_params(n_components=2) is pca and pca.n_components == 2
    fitted = pca.fit(torch.randn(50, 4))
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "components_")
    check_is_fitted(fitted)
    with pytest.raises(SkNotFittedError):
        check_is_fitted(copy)
    with pytest.raises(NotFittedError, match="not fitted"):
        copy.transform(torch.randn(3, 4))


@pytest.mark.parametrize("make", [MeanCenter, Standardize, PCA, ZCA])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_numpy_in_numpy_out_and_torch_in_torch_out_with_dtype_kept(make, dtype):
    x = (np.random.default_rng(0).normal(size=(30, 3)) * 10).astype(dtype)
    out = make().fit_transform(x, None)
    assert isinstance(out, np.ndarray) and out.dtype == (np.float32 if dtype == np.float32 else np.float64)
    t = torch.from_numpy(x)
    out_t = make().fit(t, y=np.zeros(30)).transform(t)
    assert isinstance(out_t, torch.Tensor)
    assert out_t.dtype == (t.dtype if t.is_floating_point() else torch.get_default_dtype())
    np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-4, atol=1e-4)


def test_pca_inverse_transform_keeps_float64():
    x = torch.randn(40, 5, dtype=torch.float64)
    pca = PCA(n_components=5).fit(x)
    back = pca.inverse_transform(pca.transform(x))
    assert back.dtype == torch.float64 and torch.allclose(back, x, atol=1e-12)
    back_np = pca.inverse_transform(pca.transform(x.numpy()))
    assert back_np.dtype == np.float64 and np.allclose(back_np, x.numpy(), atol=1e-12)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9, 0.95, 0.99, 0.999])
def test_pca_with_a_variance_fraction_keeps_as_many_axes_as_sklearn(fraction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 10)) @ rng.standard_normal((10, 10))
    sk = SkPCA(n_components=fraction, svd_solver="full").fit(x)
    ours = PCA(n_components=fraction).fit(x)
    assert ours.n_components_ == sk.n_components_
    assert ours.transform(x).shape == (300, sk.n_components_)
    np.testing.assert_allclose(ours.explained_variance_.numpy(), sk.explained_variance_, rtol=1e-6)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.5, 3.0])
def test_pca_refuses_n_components_that_is_neither_a_count_nor_a_fraction(bad, correlated):
    with pytest.raises(ValueError, match=r"integer 1\.\.4 .* or a float in \(0, 1\)"):
        PCA(n_components=bad).fit(correlated)
    with pytest.raises(TypeError, match="n_components='all'"):
        PCA(n_components="all").fit(correlated)
