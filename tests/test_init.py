import math

import pytest
import torch
from scipy import stats
from torch import nn

from trainwell import init


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


SHAPES = [(256, 512), (128, 64, 3), (64, 32, 3, 3)]


def fan_in(shape):
    return shape[1] * math.prod(shape[2:])


def fan_out(shape):
    return shape[0] * math.prod(shape[2:])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "fn, dist, var",
    [
        (lambda t, g: init.standard_uniform_(t, generator=g), "uniform", lambda s: 1 / (3 * fan_in(s))),
        (lambda t, g: init.xavier_uniform_(t, generator=g), "uniform", lambda s: 2 / (fan_in(s) + fan_out(s))),
        (lambda t, g: init.xavier_normal_(t, generator=g), "normal", lambda s: 2 / (fan_in(s) + fan_out(s))),
        (lambda t, g: init.he_normal_(t, generator=g), "normal", lambda s: 2 / fan_in(s)),
        (lambda t, g: init.he_uniform_(t, generator=g), "uniform", lambda s: 2 / fan_in(s)),
        (lambda t, g: init.he_normal_(t, mode="fan_out", generator=g), "normal", lambda s: 2 / fan_out(s)),
        (lambda t, g: init.small_normal_(t, generator=g), "normal", lambda s: 1e-4),
    ],
)
def test_initializer_matches_its_distribution(shape, fn, dist, var):
    w = fn(torch.empty(shape), gen())
    sample = w.flatten().double()
    expected = var(shape)
    assert float(sample.var()) == pytest.approx(expected, rel=0.05)
    assert abs(float(sample.mean())) < 4 * math.sqrt(expected / sample.numel())
    if dist == "normal":
        cdf = stats.norm(scale=math.sqrt(expected)).cdf
    else:
        bound = math.sqrt(3 * expected)
        cdf = stats.uniform(loc=-bound, scale=2 * bound).cdf
        assert float(sample.abs().max()) <= bound + 1e-6
    assert stats.kstest(sample.numpy(), cdf).pvalue > 1e-3


def test_standard_init_equals_torch_default_linear_bound():
    layer = nn.Linear(300, 20)
    bound = 1 / math.sqrt(300)
    w = init.standard_uniform_(torch.empty(20, 300), generator=gen())
    assert float(w.abs().max()) <= bound and float(layer.weight.detach().abs().max()) <= bound
    assert float(w.abs().max()) > 0.95 * bound
    assert 300 * float(w.var()) == pytest.approx(1 / 3, rel=0.05)


def test_conv_fan_in_counts_channels_times_kernel():
    assert init.fans(torch.empty(16, 3, 5, 5)) == (75, 400)
    with pytest.raises(ValueError, match=">= 2 dims"):
        init.fans(torch.empty(10))


def test_same_generator_seed_gives_same_weights_and_tensor_is_returned_in_place():
    a, b = torch.empty(50, 50), torch.empty(50, 50)
    assert init.he_normal_(a, generator=gen(3)) is a
    init.he_normal_(b, generator=gen(3))
    assert torch.equal(a, b)


def test_apply_inits_every_linear_and_conv_and_sets_bias():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3))
    init.apply(model, "zeros", bias=0.01)
    for m in (model[0], model[3]):
        assert torch.all(m.weight == 0) and torch.allclose(m.bias, torch.full_like(m.bias, 0.01))
    before = [p.clone() for p in model.parameters()]
    init.apply(model, "default")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="unknown init scheme 'glorot'"):
        init.apply(model, "glorot")


def test_weights_do_not_track_gradients_after_init():
    w = nn.Parameter(torch.empty(4, 4))
    init.xavier_uniform_(w)
    assert w.grad_fn is None and w.requires_grad


def test_he_schemes_give_the_output_layer_the_linear_unit_variance():
    model = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 200))
    init.apply(model, "he_normal", generator=gen())
    assert float(model[0].weight.detach().var()) == pytest.approx(2 / 400, rel=0.05)
    assert float(model[2].weight.detach().var()) == pytest.approx(1 / 300, rel=0.05)  # LeCun: no ReLU after it
    init.apply(model, "he_uniform", generator=gen(), output_init="same")
    assert float(model[2].weight.detach().var()) == pytest.approx(2 / 300, rel=0.05)
    init.apply(model, "xavier_normal", generator=gen())  # other schemes are unchanged on the last layer
    assert float(model[2].weight.detach().var()) == pytest.approx(2 / 500, rel=0.05)
    with pytest.raises(ValueError, match="output_layer"):
        init.apply(model, "he_normal", output_layer="tiny")
    with pytest.raises(ValueError, match="output_init='tiny'"):
        init.apply(model, "he_normal", output_init="tiny")


@pytest.mark.parametrize(("torch_name", "ours"), [("kaiming_normal", "he_normal"), ("kaiming_uniform_", "he_uniform"),
                                                   ("xavier_uniform_", "xavier_uniform"), ("zeros_", "zeros")])
def test_apply_accepts_torchs_names(torch_name, ours):
    a = nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 5))
    b = nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 5))
    init.apply(a, torch_name, generator=gen(1))
    init.apply(b, ours, generator=gen(1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_torch_kaiming_and_normal_uniform_names_match_torch_oracles():
    w = torch.empty(400, 300)
    # torch's kaiming_normal_ (fan_in, leaky_relu a=0 gain sqrt 2) draws from the same distribution
    oracle = nn.init.kaiming_normal_(torch.empty(400, 300), generator=gen(5))
    init.init_tensor_(w, "kaiming_normal", generator=gen(5))
    assert torch.allclose(w, oracle)
    init.init_tensor_(w, "normal", std=0.05, generator=gen(5))
    assert torch.allclose(w, nn.init.normal_(torch.empty(400, 300), 0.0, 0.05, generator=gen(5)))
    init.init_tensor_(w, "uniform", std=0.05, generator=gen(5))
    assert float(w.abs().max()) <= 0.05 * 3**0.5 and float(w.var()) == pytest.approx(0.05**2, rel=0.05)


class HeadFirst(nn.Module):
    """A user's model that registers its output layer before its hidden layer."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(300, 10)
        self.body = nn.Linear(400, 300)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


@pytest.mark.parametrize("declared", ["head", "module"])
def test_declared_output_layer_gets_the_linear_variance_whatever_the_registration_order(declared):
    model = HeadFirst()
    init.apply(model, "he_normal", generator=gen(), output_layer=model.head if declared == "module" else "head")
    assert float(model.body.weight.detach().var()) == pytest.approx(2 / 400, rel=0.05)  # He on the hidden layer
    assert float(model.head.weight.detach().var()) == pytest.approx(1 / 300, rel=0.05)  # LeCun on the output


def test_a_non_sequential_model_without_a_declared_output_layer_is_an_error_not_a_guess():
    model = HeadFirst()
    with pytest.raises(ValueError, match="output_layer= one of head, body"):
        init.apply(model, "he_normal")
    init.apply(model, "he_normal", output_init="same", generator=gen())  # every layer alike: nothing to guess
    assert float(model.head.weight.detach().var()) == pytest.approx(2 / 300, rel=0.05)
    init.apply(model, "xavier_normal", generator=gen())  # schemes that treat no layer specially need no output
    with pytest.raises(ValueError, match="not a submodule"):
        init.apply(model, "he_normal", output_layer=nn.Linear(3, 3))
    with pytest.raises(TypeError, match="output_layer=3"):
        init.apply(model, "he_normal", output_layer=3)


def test_config_accepts_torchs_names_and_the_model_builder_gets_the_same_weights():
    from trainwell.config import load_config
    from trainwell.pipeline import prepare

    ours = prepare(load_config(None, ["data.name=spirals", "model.kind=mlp", "init.scheme=he_normal"])).model
    torchs = prepare(load_config(None, ["data.name=spirals", "model.kind=mlp", "init.scheme=kaiming_normal"])).model
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), torchs.parameters(), strict=True))


def test_a_bias_that_is_not_a_number_is_refused_by_name():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"^bias='x' is not allowed: use a number"):
        init.apply(model, "he_normal", bias="x")
    with pytest.raises(ValueError, match=r"^bias=nan is not allowed"):
        init.apply(model, "he_normal", bias=float("nan"))
    assert torch.all(init.apply(model, "he_normal", bias=2)[0].bias == 2.0)


def test_apply_names_the_weights_it_leaves_untouched():
    from trainwell.regularize import SkippedLayersWarning

    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(10, 8), "lstm": nn.LSTM(8, 8), "out": nn.Linear(8, 2)})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(SkippedLayersWarning, match=r"init.apply\('zeros'\) .* emb \(Embedding\), lstm \(LSTM\)"):
        init.apply(model, "zeros", output_layer="out")
    after = model.state_dict()
    assert torch.all(after["out.weight"] == 0)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("out."))


class _OnlyLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 4)

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("scheme", ["he_normal", "kaiming_uniform", "xavier_uniform"])
def test_a_model_without_linear_or_conv_layers_warns_alike_for_every_scheme(scheme):
    """Nothing to initialize is a warning whatever the scheme: a He scheme asks for no output layer there."""
    from trainwell.regularize import SkippedLayersWarning

    model = _OnlyLSTM()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(SkippedLayersWarning, match=r"acts on Linear/Conv layers only and left these weights as they "
                                                  r"were: rnn \(LSTM\)"):
        assert init.apply(model, scheme) is model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.warns(SkippedLayersWarning, match=r"Sequential has none: nothing was initialized"):
        init.apply(nn.Sequential(nn.ReLU()), scheme)


@pytest.mark.parametrize("scheme", ["he_normal", "xavier_uniform", "small_normal"])
def test_a_mistyped_mode_is_refused_whatever_the_scheme_reads(scheme):
    model = nn.Linear(3, 3)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match=r"^mode='fanin' is not allowed: use 'fan_in' or 'fan_out'$"):
        init.apply(model, scheme, mode="fanin")
    with pytest.raises(ValueError, match=r"^mode='fanin' is not allowed"):
        init.init_tensor_(model.weight.detach(), scheme, mode="fanin")
    assert torch.equal(model.weight, before)


@pytest.mark.parametrize("scheme", ["small_normal", "normal", "uniform"])
def test_a_negative_std_is_refused_by_name(scheme):
    model = nn.Linear(3, 3)
    with pytest.raises(ValueError, match=r"^std=-1 is not allowed: use a finite number >= 0"):
        init.apply(model, scheme, std=-1)
    with pytest.raises(TypeError, match=r"^std='a' is not allowed: use a number >= 0"):
        init.apply(model, scheme, std="a")
    with pytest.raises(ValueError, match=r"^std=-0.5 is not allowed"):
        init.small_normal_(torch.empty(3, 3), std=-0.5)
    # std=0 is a valid (if useless) choice: every weight 0, as torch's normal_(0, 0) gives
    assert torch.all(init.apply(model, scheme, std=0).weight == 0)


@pytest.mark.parametrize("model, shown", [(None, "None"), (nn.Linear(3, 2).parameters(), "<generator>"),
                                          ([nn.Linear(3, 2)], "<list>")])
def test_apply_refuses_what_is_not_a_module_by_name(model, shown):
    with pytest.raises(TypeError, match=rf"^model={shown} is not allowed: use an nn.Module") as err:
        init.apply(model, "he_normal")
    assert len(str(err.value).splitlines()) == 1


class _FineTuned(nn.Module):
    """A user's fine-tuning model: a pretrained backbone, frozen, and a new head."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x))


def test_frozen_layers_keep_their_weights_unless_asked():
    from trainwell.regularize import SkippedLayersWarning

    torch.manual_seed(0)
    model = _FineTuned()
    pretrained = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    with pytest.warns(SkippedLayersWarning, match=r"left these frozen layers \(requires_grad=False\) as they were: "
                                                  r"backbone.0, backbone.2; pass frozen=True"):
        init.apply(model, "he_normal", output_layer="head", bias=0.5)
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in pretrained.items())
    assert torch.all(model.head.bias == 0.5)
    # the head was drawn as the output layer: LeCun's 1 / fan_in variance (std 0.25 for 16 inputs)
    assert 0.15 < float(model.head.weight.detach().std()) < 0.35
    init.apply(model, "zeros", output_layer="head", frozen=True)
    assert all(float(p.detach().abs().sum()) == 0 for p in model.backbone.parameters())
