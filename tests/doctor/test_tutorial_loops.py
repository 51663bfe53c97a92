"""Healthy loops written the way well-known PyTorch tutorials write them, under ``doctor.check`` and
``doctor.watch``: the word-level language model (nn.TransformerEncoder fed (T, B) token ids, next-token targets
flattened), the character-RNN name classifier (one (T, 1, letters) name per forward, 64 summed losses clipped at 3
under SGD), the DCGAN (a discriminator checked on real images then fakes, a generator whose loss goes through the
discriminator, N(0, 0.02) weights with BatchNorm) and the CIFAR-10 LeNet (F.relu in its forward)."""

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor import preflight as pf

V, T, B = 12, 10, 8  # vocabulary, positions, sequences


class WordLM(nn.Module):
    """The language-model tutorial's TransformerModel: (T, B) ids in, (T, B, V) scores out, a causal mask."""

    def __init__(self, d=16):
        super().__init__()
        self.embedding = nn.Embedding(V, d)
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0)  # batch_first=False, as in the tutorial
        self.transformer_encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.linear = nn.Linear(d, V)
        self.d = d

    def forward(self, src):
        mask = nn.Transformer.generate_square_subsequent_mask(len(src))
        return self.linear(self.transformer_encoder(self.embedding(src) * math.sqrt(self.d), mask))


def _corpus(n):
    """Token ids that count up by one (mod V) from a random start: each next token follows from the last."""
    start = torch.randint(0, V, (1, n), generator=torch.Generator().manual_seed(0))
    return (start + torch.arange(T + 1)[:, None]) % V  # (T + 1, n): sequence-first, as batchify() lays it out


@pytest.mark.slow  # seconds each
def test_a_sequence_first_language_model_with_flattened_targets_is_checked_batch_first():
    torch.manual_seed(0)
    model = WordLM()
    source = _corpus(B)
    data, targets = source[:-1], source[1:].reshape(-1)  # get_batch(): (T, B) ids, (T * B,) next tokens

    def loss_fn(output, target):
        return F.cross_entropy(output.view(-1, V), target)

    report = doctor.check(model, data, targets, loss_fn)  # raised: "x has 10 examples and y 80"
    assert report["initial loss"].status == "pass", report["initial loss"]
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"]
    assert report["batch independence"].status == "pass", report["batch independence"]
    assert "forward" not in vars(model)  # the model is left as it was


def test_a_batch_first_model_with_targets_flattened_per_position_is_checked():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(V, 16), nn.Linear(16, V))  # reads one token per position
    x = _corpus(B).t()[:, :-1]  # (B, T)
    y = _corpus(B).t()[:, 1:].reshape(-1)  # (B * T,)
    report = doctor.check(model, x, y, lambda out, t: F.cross_entropy(out.reshape(-1, V), t))
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"]


class CharRNN(nn.Module):
    """The name-classification tutorial's model: one (T, 1, letters) name, (1, classes) log-probabilities."""

    def __init__(self, letters=8, hidden=32, classes=3):
        super().__init__()
        self.rnn = nn.RNN(letters, hidden)
        self.h2o = nn.Linear(hidden, classes)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        _, hidden = self.rnn(line_tensor)
        return self.softmax(self.h2o(hidden[0]))


def _names(n, length, seed, borrowed=0.0):
    """One-hot names (length, n, 8) whose class (0..2) sets which letters they draw from; a ``borrowed`` share of
    them labelled at random (names borrowed from another language)."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 3, (n,), generator=g)
    letters = (3 * label[None, :] + torch.randint(0, 3, (length, n), generator=g)) % 8
    other = torch.rand(n, generator=g) < borrowed
    label = torch.where(other, torch.randint(0, 3, (n,), generator=g), label)
    return F.one_hot(letters, 8).float(), label


def test_one_sequence_first_name_gets_an_error_that_names_its_layout():
    x, y = _names(1, 5, 0)
    with pytest.raises(ValueError, match="along dimension 1") as raised:
        doctor.check(CharRNN(), x, y, nn.NLLLoss())
    assert "stacked along dimension 1" in str(raised.value)


def test_names_of_one_length_stacked_along_dimension_1_are_checked():
    torch.manual_seed(0)
    x, y = _names(48, 5, 0)
    report = doctor.check(CharRNN(), x, y, nn.NLLLoss())
    assert report["initial loss"].status == "pass", report["initial loss"]
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"]
    assert report["input-independent baseline"].status == "pass", report["input-independent baseline"]


def _summed_names_loop(max_norm, lr, steps=40, batch=16):
    """The tutorial's loop: each name forwarded on its own, the batch's losses summed, clipped, SGD."""
    torch.manual_seed(0)
    rnn = CharRNN()
    opt = torch.optim.SGD(rnn.parameters(), lr=lr)
    x, y = _names(steps * batch, 5, 1, borrowed=0.3)
    with doctor.watch(rnn, opt, every=10) as w:
        for s in range(steps):
            batch_loss = 0
            for i in range(s * batch, (s + 1) * batch):
                batch_loss += F.nll_loss(rnn(x[:, i : i + 1]), y[i : i + 1])
            batch_loss.backward()
            nn.utils.clip_grad_norm_(rnn.parameters(), max_norm)
            opt.step()
            opt.zero_grad()
            w.step(batch_loss)
    return w.report()


@pytest.mark.slow  # seconds each
def test_clipping_every_step_at_a_step_length_the_curve_shows_works_is_information():
    report = _summed_names_loop(max_norm=1.0, lr=0.15)
    curve = report["learning rate (loss curve)"]
    assert not curve.value.startswith(("too low", "flat")), curve  # the steps lr x max_norm are not too short
    clipped = report["loop: gradients at optimizer.step()"]
    assert clipped.status == "info" and clipped.value.startswith("clipped on"), clipped  # was a warning
    assert "lr x max_norm" in clipped.advice and "not steps too short" in clipped.value


@pytest.mark.slow  # seconds each
@pytest.mark.parametrize("max_norm", [0.001, 0.3])
def test_clipping_that_leaves_steps_too_short_still_warns(max_norm):
    report = _summed_names_loop(max_norm=max_norm, lr=0.15)
    assert report["learning rate (loss curve)"].value.startswith(("too low", "flat"))
    clipped = report["loop: gradients at optimizer.step()"]
    assert clipped.status == "warn" and clipped.value.startswith("clipped on"), clipped


NZ = 8


def _dcgan(seed=0):
    """The DCGAN tutorial's players at 16 x 16, weights N(0, 0.02), BatchNorm weights N(1, 0.02)."""
    torch.manual_seed(seed)
    gen = nn.Sequential(nn.ConvTranspose2d(NZ, 32, 4, 1, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU(True),
                        nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(True),
                        nn.ConvTranspose2d(16, 3, 4, 2, 1, bias=False), nn.Tanh())
    disc = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(16, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(32, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    for m in [*gen.modules(), *disc.modules()]:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return gen, disc


def _real_images(n, seed):
    """Smooth colour gradients with a random tilt, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    r = torch.linspace(-1, 1, 16)
    tilt = torch.rand(n, 3, 1, 1, generator=g) * 2 - 1
    return torch.tanh(2 * (tilt * r[None, None, :, None] + (1 - tilt.abs()) * r[None, None, None, :]))


def _bce(out, y):
    return F.binary_cross_entropy(out.view(-1), y)


def test_a_discriminator_checked_on_real_images_then_fakes_is_not_told_it_memorizes():
    gen, disc = _dcgan()
    with torch.no_grad():
        fake = gen(torch.randn(64, NZ, 1, 1, generator=torch.Generator().manual_seed(1)))
    x = torch.cat([_real_images(64, 0), fake])  # real first, then fakes, as the loop feeds them
    y = torch.cat([torch.ones(64), torch.zeros(64)])
    baseline = pf.input_independent_baseline(disc, x, y, _bce)
    assert baseline.status == "pass", baseline  # was a warning: the held-out quarter was all fakes
    shuffled = pf.input_independent_baseline(nn.Sequential(nn.Flatten(), nn.Linear(768, 1), nn.Sigmoid()),
                                             _real_images(128, 2), torch.randint(0, 2, (128,)).float(), _bce)
    assert shuffled.status != "pass", shuffled  # labels that the images do not carry still show


def test_the_discriminators_batchnorm_sets_the_scale_variance_propagation_reads():
    _, disc = _dcgan()
    x, y = _real_images(32, 0), torch.ones(32)
    verdict = pf.variance_propagation(disc, x, y, _bce)
    assert verdict.status == "pass", verdict  # was "signals explode" across the BatchNorm (x12)
    assert "normalization layer" in verdict.value


def test_a_deep_tanh_net_initialized_too_small_still_fails_with_a_layernorm_at_its_end():
    torch.manual_seed(0)
    layers = [nn.Linear(16, 64), nn.Tanh()] + [m for _ in range(6) for m in (nn.Linear(64, 64), nn.Tanh())]
    model = nn.Sequential(*layers, nn.LayerNorm(64), nn.Linear(64, 3))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    assert pf.variance_propagation(model, x, y).status == "fail"


@pytest.mark.slow  # seconds each
def test_a_generator_whose_loss_goes_through_the_discriminator_is_not_failed_by_the_baseline():
    gen, disc = _dcgan()
    opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    noise = torch.randn(32, NZ, 1, 1, generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = doctor.check(gen, noise, torch.ones(32), lambda out, y: _bce(disc(out), y), optimizer=opt)
    baseline = report["input-independent baseline"]
    assert baseline.status == "skip" and "another model" in baseline.value, baseline  # was a fail
    assert not [c for c in caught if "requires_grad=True to a scalar" in str(c.message)]
    assert report["parameters registered"].status == "pass", report["parameters registered"]


def test_a_perceptual_loss_through_another_model_still_gets_the_baseline_read_quietly():
    """Targets that differ: the loss through a fixed feature network is read as usual."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Linear(6, 16), nn.Tanh())  # trainable parameters outside the model, not stepped
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 6))
    x = torch.randn(64, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = doctor.check(model, x, x.flip(1), lambda out, y: F.mse_loss(features(out), features(y)))
    assert report["input-independent baseline"].status == "pass", report["input-independent baseline"]
    # the loss carries a graph through the feature network's parameters: its value is read without torch's warning
    assert not [c for c in caught if "requires_grad=True to a scalar" in str(c.message)]


class LeNet(nn.Module):
    """The CIFAR-10 tutorial's Net: activations called as F.relu in forward."""

    def __init__(self):
        super().__init__()
        self.conv1, self.pool, self.conv2 = nn.Conv2d(3, 6, 5), nn.MaxPool2d(2, 2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


def test_a_net_with_functional_relus_is_advised_he_init_which_then_passes():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    net = LeNet()
    with torch.no_grad():  # torch's default init scaled by 0.5: the gradient shrinks x0.016 through the four layers
        for m in (net.conv1, net.conv2, net.fc1, net.fc2):
            m.weight.mul_(0.5)
    verdict = pf.variance_propagation(net, x, y)
    assert verdict.status == "warn" and "kaiming_normal_" in verdict.advice, verdict  # advised Xavier, which warns
    for m in (net.conv1, net.conv2, net.fc1, net.fc2):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    assert pf.variance_propagation(net, x, y).status == "pass"


def test_the_he_advice_followed_as_written_leaves_the_initial_loss_near_ln_c():
    """The advice names He init for the hidden layers and small weights for the output layer: followed so, both
    variance propagation and the initial loss pass; He on every layer (the output layer too) makes the initial
    loss fail, so advice that said "each layer" led to the next verdict."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    net = LeNet()
    with torch.no_grad():
        for m in (net.conv1, net.conv2, net.fc1, net.fc2):
            m.weight.mul_(0.5)
    advice = pf.variance_propagation(net, x, y).advice
    assert "each hidden layer" in advice and "std=0.01" in advice, advice
    for m in (net.conv1, net.conv2, net.fc1, net.fc2):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    every = copy.deepcopy(net)
    nn.init.kaiming_normal_(every.fc3.weight, nonlinearity="relu")
    nn.init.normal_(net.fc3.weight, std=0.01)
    assert pf.variance_propagation(net, x, y).status == "pass"
    assert pf.initial_loss(net, x, y).status == "pass"
    assert pf.initial_loss(every, x, y).status == "fail"
