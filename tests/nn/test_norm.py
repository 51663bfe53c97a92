import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.config import ModelConfig, load_config
from trainwell.errors import ConfigError
from trainwell.nn.dropout import Dropout, Uout
from trainwell.nn.models import build_model
from trainwell.nn.norm import count_trainable, make_norm, train_only_norm
from trainwell.nn.variance_shift import recompute_bn_stats, variance_shift


def test_batchnorm_running_stats_follow_the_momentum_formula():
    x = torch.randn(64, 3) * 2.0 + 1.0
    bn = make_norm("batch", 3, 0)
    bn.train()
    out = bn(x)
    assert torch.allclose(bn.running_mean, 0.1 * x.mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, 0.9 + 0.1 * x.var(0, unbiased=True), atol=1e-5)
    # training normalizes with the batch mean and the biased variance
    expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bn.eps)
    assert torch.allclose(out, expected, atol=1e-5)
    bn.eval()  # eval uses the running statistics
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(bn(x), expected, atol=1e-5)


def test_group_norm_with_one_group_is_layer_norm_and_with_c_groups_is_instance_norm():
    x = torch.randn(4, 6, 5, 5)
    assert torch.allclose(make_norm("layer", 6, 2)(x), F.layer_norm(x, x.shape[1:]), atol=1e-5)
    assert torch.allclose(make_norm("instance", 6, 2)(x), F.instance_norm(x), atol=1e-5)
    assert torch.allclose(make_norm("group", 6, 2, groups=1)(x), F.layer_norm(x, x.shape[1:]), atol=1e-5)
    assert torch.allclose(make_norm("group", 6, 2, groups=6)(x), F.instance_norm(x), atol=1e-5)
    dense = torch.randn(4, 6)
    assert torch.allclose(make_norm("layer", 6, 0)(dense), F.layer_norm(dense, (6,)), atol=1e-5)


@pytest.mark.parametrize("kind, dims", [("layer", 0), ("group", 1), ("instance", 2), ("layer", 2)])
def test_per_sample_norms_do_not_depend_on_the_rest_of_the_batch(kind, dims):
    norm = make_norm(kind, 4, dims, groups=2).train()
    shape = (5, 4) + (6,) * dims
    x = torch.randn(shape)
    y = x.clone()
    y[1:] = torch.randn_like(y[1:]) * 10
    assert torch.allclose(norm(x)[0], norm(y)[0], atol=1e-5)
    bn = make_norm("batch", 4, dims).train()
    assert not torch.allclose(bn(x)[0], bn(y)[0], atol=1e-3)  # BatchNorm in train mode does


def test_make_norm_errors():
    with pytest.raises(ConfigError, match="norm_groups = 32 does not divide 48"):
        make_norm("group", 48, 2)
    with pytest.raises(ConfigError, match="'instance' needs spatial positions"):
        make_norm("instance", 8, 0)
    with pytest.raises(ConfigError, match="'weight' is not allowed"):
        make_norm("weight", 8, 0)
    with pytest.raises(ConfigError, match="model.norm_groups"):
        load_config(None, ["model.norm=group", "model.norm_groups=0"])


@pytest.mark.parametrize("placement", ["before", "after"])
def test_placement_puts_norm_before_or_after_the_nonlinearity(placement):
    m = build_model(ModelConfig(kind="mlp", hidden=[8], norm="batch", norm_placement=placement), (3,), 2)
    kinds = [type(layer).__name__ for layer in m]
    expected = ["BatchNorm1d", "ReLU"] if placement == "before" else ["ReLU", "BatchNorm1d"]
    assert kinds[2:4] == expected
    cnn = build_model(ModelConfig(norm="group", norm_groups=8, norm_placement=placement), (1, 40), 10)
    assert sum(isinstance(layer, nn.GroupNorm) for layer in cnn) == 4


def test_dropout_keep_prob_statistics_inverted_and_vanilla():
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    layer = Dropout(keep_prob=0.8)
    y = layer(x)
    assert float((y == 0).float().mean()) == pytest.approx(0.2, abs=0.002)
    assert torch.allclose(y[y != 0], torch.tensor(1.25))
    assert float(y.mean()) == pytest.approx(1.0, abs=0.005)
    layer.eval()
    assert torch.equal(layer(x), x)
    vanilla = Dropout(keep_prob=0.8, mode="vanilla")
    assert set(vanilla(x).unique().tolist()) == {0.0, 1.0}
    vanilla.eval()
    assert torch.allclose(vanilla(x), torch.full_like(x, 0.8))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="keep_prob="):
            Dropout(keep_prob=bad)


def test_uout_is_bounded_multiplicative_noise_and_identity_at_test_time():
    x = torch.full((100000,), 2.0)
    layer = Uout(beta=0.3)
    y = layer(x)
    assert float(y.min()) >= 2.0 * 0.7 - 1e-6 and float(y.max()) <= 2.0 * 1.3 + 1e-6
    assert float(y.mean()) == pytest.approx(2.0, abs=0.01)
    assert float(y.var()) == pytest.approx(4.0 * 0.3**2 / 3, rel=0.05)  # Var(x r) = x^2 beta^2 / 3
    layer.eval()
    assert torch.equal(layer(x), x)


def _dropout_then_bn(keep=0.5):
    torch.manual_seed(0)
    return nn.Sequential(Dropout(keep_prob=keep), nn.BatchNorm1d(16))


def test_dropout_before_bn_shifts_the_variance_by_keep_prob_and_recompute_fixes_it():
    model = _dropout_then_bn(0.5)
    x = torch.randn(4096, 16)  # mean 0, variance 1
    model.train()
    with torch.no_grad():
        for _ in range(100):
            model(x[torch.randint(0, len(x), (256,))])
    (report,) = variance_shift(model, x)
    assert report["running_var"] == pytest.approx(2.0, rel=0.1)  # (c^2 + v)/p - c^2 = 1/0.5
    assert report["eval_var"] == pytest.approx(1.0, rel=0.05)
    assert report["ratio"] == pytest.approx(0.5, rel=0.1)
    recompute_bn_stats(model, x)
    (fixed,) = variance_shift(model, x)
    assert fixed["ratio"] == pytest.approx(1.0, rel=0.02)
    assert model[1].momentum == 0.1 and model.training  # modes and momentum restored


def test_dropout_where_last_and_uout_keep_dropout_away_from_batchnorm():
    last = build_model(ModelConfig(kind="mlp", hidden=[8, 8, 8], norm="batch", dropout_keep=0.5,
                                   dropout_where="last"), (3,), 2)
    kinds = [type(layer).__name__ for layer in last]
    assert kinds.count("Dropout") == 1 and kinds.index("Dropout") > max(i for i, k in enumerate(kinds)
                                                                       if k == "BatchNorm1d")
    every = build_model(ModelConfig(kind="mlp", hidden=[8, 8], norm="batch", dropout_keep=0.5), (3,), 2)
    assert [type(layer).__name__ for layer in every].count("Dropout") == 2
    uout = build_model(ModelConfig(kind="mlp", hidden=[8], dropout_mode="uout", uout_beta=0.2), (3,), 2)
    assert any(isinstance(layer, Uout) for layer in uout)
    cnn = build_model(ModelConfig(blocks=[{"type": "conv", "channels": 4, "kernel": 3}, {"type": "norm"},
                                          {"type": "dropout", "keep_prob": 0.9}, {"type": "uout", "beta": 0.1}]),
                      (1, 10), 2)
    assert [type(layer).__name__ for layer in cnn][:5] == ["Conv1d", "ReLU", "BatchNorm1d", "Dropout", "Uout"]


def test_train_only_norm_freezes_everything_else():
    model = build_model(ModelConfig(kind="mlp", hidden=[16, 16], norm="batch"), (4,), 3)
    trainable, total = train_only_norm(model)
    assert trainable == 2 * (16 + 16) == count_trainable(model) and total > trainable
    with pytest.raises(ConfigError, match="needs normalization layers"):
        train_only_norm(build_model(ModelConfig(kind="mlp", hidden=[4]), (4,), 3))


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_fit_with_only_batchnorm_trainable_beats_chance_and_keeps_other_weights(workdir):
    from trainwell.pipeline import fit, prepare

    args = ["data.name=digits", "model.kind=mlp", "model.hidden=[256, 256]", "model.norm=batch",
            "train.trainable=norm", "train.epochs=15", "optim.lr=0.01", "report.enabled=false"]
    cfg = load_config(None, args)
    before = {k: v.clone() for k, v in prepare(cfg).model.state_dict().items()}
    res = fit(cfg, out="bn", quiet=True)
    after = res.model.state_dict()
    assert res.summary["trainable_params"] == 2 * 512
    assert res.summary["final"]["test_acc"] > 0.5  # chance is 0.1
    for key, value in before.items():
        if key.startswith(("1.", "4.", "7.")) and "running" not in key and "num_batches" not in key:
            assert torch.equal(value, after[key]), key  # Linear weights and biases never moved


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance"])
def test_fit_trains_with_each_normalization(workdir, norm):
    from trainwell.pipeline import fit, prepare
    from trainwell.train.trainer import evaluate

    cfg = load_config(None, [f"model.norm={norm}", "model.norm_groups=8", "train.epochs=1", "report.enabled=false",
                             "doctor.preflight=false", "doctor.monitor_every=0",
                             "model.blocks=[{type='conv', channels=16, kernel=4, stride=2, padding=1}]"])
    prep = prepare(cfg)  # the same seed gives the model fit starts from
    initial = evaluate(prep.model, *prep.splits.val)["loss"]
    summary = fit(cfg, out=norm, quiet=True).summary
    assert summary["epochs"] == 1
    assert summary["final"]["val_loss"] < 0.9 * initial  # one epoch lowers the loss (by 18-33% measured)


def test_recompute_restores_each_modules_own_mode_and_leaves_out_a_last_batch_of_one():
    model = _dropout_then_bn(0.5)
    model.train()
    model[1].eval()  # one BatchNorm frozen by the user
    x = torch.randn(257, 16)  # 256 + 1: a last batch of one example
    recompute_bn_stats(model, x, batch_size=256)
    assert model.training and model[0].training and not model[1].training
    assert torch.allclose(model[1].running_mean, x[:256].mean(0), atol=1e-5)


def test_volumes_get_a_3d_batch_norm_and_other_axis_counts_are_refused_in_one_line():
    x = torch.randn(4, 3, 2, 5, 5) * 2 + 1  # a user's (N, C, D, H, W) volumes
    bn = make_norm("batch", 3, 3)
    assert isinstance(bn, nn.BatchNorm3d)
    dims = (0, 2, 3, 4)
    expected = (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + bn.eps)
    assert torch.allclose(bn(x), expected, atol=1e-5)
    assert torch.allclose(make_norm("instance", 3, 3)(x), F.instance_norm(x), atol=1e-5)
    for bad in (4, -1, 1.5):
        with pytest.raises(ValueError, match=rf"spatial_dims={bad} is not allowed: use 0 for \(N, C\)"):
            make_norm("batch", 3, bad)
