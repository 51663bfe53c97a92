"""doctor.check on models users write themselves: lazy modules, channels-last convolutions, frozen BatchNorm
backbones, a CLS-token Transformer, a Siamese pair model, a GRU encoder-decoder, a zero-initialized head, buffers of
running statistics. Each gets verdicts, never an exception, no false alarm when healthy, and each planted bug is
named by its cause."""

import pytest
import torch
from torch import nn

from trainwell import doctor


class LazyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.LazyLinear(32)
        self.out = nn.LazyLinear(3)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def _blobs(n=96, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :3].argmax(1)


def test_lazy_layers_get_verdicts_and_the_loops_own_initial_weights():
    x, y = _blobs()
    torch.manual_seed(5)
    model = LazyClassifier()
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    assert not report.failed and not report.warnings, report.failed + report.warnings
    after_check = torch.randn(4)
    torch.manual_seed(5)
    twin = LazyClassifier()
    state = torch.get_rng_state()
    twin(x[:2])  # the user's first forward, from the same random state
    torch.set_rng_state(state)
    assert torch.equal(torch.randn(4), after_check)  # check left the random state where it found it
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q), name


class ChannelsLastNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x.contiguous(memory_format=torch.channels_last)))
        return self.head(h.mean((2, 3)))


class FrozenBackbone(nn.Module):
    """A pretrained-style backbone whose BatchNorm keeps its running statistics (eval mode) under a trained head."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.backbone.requires_grad_(False)
        self.head = nn.Linear(16, 4)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.backbone(x).mean((2, 3)))


def _pixels(n=64, seed=0):
    """Images in [0, 1] whose class sets their mean colour, and the same divided by 255 once more."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    colours = torch.rand(4, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    x = (0.6 * colours[y] + 0.4 * torch.rand(n, 3, 8, 8, generator=g)).clamp(0, 1)
    return x, x / 255, y


def _watched(model, x, y):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    with doctor.watch(model, opt) as w:
        for i in range(0, len(x), 16):
            loss = nn.functional.cross_entropy(model(x[i:i + 16]), y[i:i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 16])
    return w.report()["loop: inputs"]


@pytest.mark.slow  # seconds each
def test_inputs_divided_twice_are_named_through_a_channels_last_copy():
    pixels, twice, y = _pixels()
    torch.manual_seed(0)
    assert "input scale" not in [v.check for v in doctor.check(ChannelsLastNet(), pixels, y, nn.CrossEntropyLoss())]
    report = doctor.check(ChannelsLastNet(), twice, y, nn.CrossEntropyLoss())
    assert report["input scale"].status == "warn"
    assert "far below unit scale" in str(report["input scale"].value)
    assert _watched(ChannelsLastNet(), pixels, y).status == "pass"
    assert _watched(ChannelsLastNet(), twice, y).status == "warn"


@pytest.mark.slow  # seconds each
def test_a_frozen_batchnorm_does_not_excuse_inputs_divided_twice():
    pixels, twice, y = _pixels()
    torch.manual_seed(0)
    model = FrozenBackbone().train()
    assert "input scale" not in [v.check for v in doctor.check(model, pixels, y, nn.CrossEntropyLoss())]
    report = doctor.check(model, twice, y, nn.CrossEntropyLoss())
    assert report["input scale"].status == "warn"
    assert _watched(FrozenBackbone(), pixels, y).status == "pass"
    assert _watched(FrozenBackbone(), twice, y).status == "warn"


class ClsTransformer(nn.Module):
    """A Transformer-encoder classifier that prepends a CLS token and reads its output."""

    def __init__(self, vocab=41, d=16, length=10, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, padding_idx=0)
        self.position = nn.Parameter(0.02 * torch.randn(1, length + 1, d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, ids, padding):
        h = torch.cat([self.cls.expand(len(ids), -1, -1), self.embed(ids)], 1) + self.position
        keep_cls = torch.zeros(len(ids), 1, dtype=torch.bool)
        h = self.encoder(h, src_key_padding_mask=torch.cat([keep_cls, padding], 1))
        return self.head(h[:, 0])


def _sentences(n=128, length=10, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    ids = 1 + 10 * y[:, None] + torch.randint(0, 10, (n, length), generator=g)  # each class its own words
    padding = torch.arange(length)[None] >= torch.randint(3, length + 1, (n, 1), generator=g)
    return ids.masked_fill(padding, 0), padding, y


@pytest.mark.slow  # seconds each
def test_a_mask_that_hides_the_real_tokens_beside_a_cls_token_is_named():
    ids, padding, y = _sentences()
    torch.manual_seed(0)
    healthy = doctor.check(ClsTransformer(), {"ids": ids, "padding": padding}, y, nn.CrossEntropyLoss())
    assert not healthy.failed and not healthy.warnings, healthy.failed + healthy.warnings
    inverted = doctor.check(ClsTransformer(), {"ids": ids, "padding": ~padding}, y, nn.CrossEntropyLoss())
    assert inverted["key padding mask"].status == "fail"
    assert "hides the" in str(inverted["key padding mask"].value)
    assert all("key padding mask" in v.advice for v in inverted.failed + inverted.warnings
               if v.check != "key padding mask")


class StandardizedHead(FrozenBackbone):
    """The same frozen backbone, its pooled features standardized by a BatchNorm1d that trains before the head."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(16)

    def forward(self, x):
        return self.head(self.norm(self.backbone(x).mean((2, 3))))


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_head_on_narrow_frozen_features_is_told_to_standardize_them():
    pixels, _, y = _pixels()
    torch.manual_seed(0)
    narrow = doctor.check(FrozenBackbone().train(), pixels, y, nn.CrossEntropyLoss())["overfit a tiny subset"]
    assert narrow.status == "fail"
    assert "('head') receives the frozen layers' features" in narrow.advice
    torch.manual_seed(0)
    standardized = doctor.check(StandardizedHead().train(), pixels, y, nn.CrossEntropyLoss())
    assert standardized["overfit a tiny subset"].status == "pass"


class Siamese(nn.Module):
    """Scores whether two inputs match: one encoder for both, a head on |e(a) - e(b)|, one logit per pair (B,)."""

    def __init__(self, d=10):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 8))
        self.head = nn.Linear(8, 1)

    def forward(self, a, b):
        return self.head((self.encoder(a) - self.encoder(b)).abs()).squeeze(-1)


def test_pair_labels_with_a_trailing_dimension_are_told_to_squeeze():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 10, generator=g)
    same = torch.rand(64, generator=g) < 0.5
    b = torch.where(same[:, None], a + 0.1 * torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g))
    torch.manual_seed(0)
    assert not doctor.check(Siamese(), (a, b), same.float(), nn.BCEWithLogitsLoss()).failed
    run = doctor.check(Siamese(), (a, b), same.float()[:, None], nn.BCEWithLogitsLoss())["forward and loss run"]
    assert run.status == "fail"
    assert "y.squeeze(-1)" in run.advice


class Seq2Seq(nn.Module):
    """A GRU encoder-decoder trained with teacher forcing: the decoder reads the target shifted right."""

    def __init__(self, vocab=20, d=32):
        super().__init__()
        self.source_embed, self.target_embed = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        self.encoder, self.decoder = nn.GRU(d, d, batch_first=True), nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(d, vocab)

    def forward(self, source, target_in):
        _, state = self.encoder(self.source_embed(source))
        return self.out(self.decoder(self.target_embed(target_in), state)[0])


def _counting(n=96, length=8, vocab=20, seed=0):
    """Targets that count up from the source's first token: each one is the previous target plus 1."""
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(2, vocab, (n, length), generator=g)
    target = 2 + (source[:, :1] - 2 + torch.arange(length)) % (vocab - 2)
    return source, torch.cat([torch.ones(n, 1, dtype=torch.long), target[:, :-1]], 1), target


@pytest.mark.slow  # seconds each
def test_a_baseline_missed_after_a_huge_output_init_names_the_initial_loss():
    source, target_in, target = _counting()

    def loss(out, t):
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), t.reshape(-1))

    torch.manual_seed(0)
    healthy = doctor.check(Seq2Seq(), (source, target_in), target, loss)
    assert not healthy.failed and not healthy.warnings, healthy.failed + healthy.warnings
    torch.manual_seed(0)
    model = Seq2Seq()
    nn.init.normal_(model.out.weight, 0.0, 30.0)
    report = doctor.check(model, (source, target_in), target, loss)
    assert report["initial loss"].status == "fail"
    missed = [v for v in report.failed + report.warnings if v.check == "input-independent baseline"]
    assert missed and all(v.advice.startswith("fix 'initial loss' first:") for v in missed)


class ZeroHeadNet(nn.Module):
    """An MLP whose new output layer starts at zero, as fine-tuning recipes initialize a head."""

    def __init__(self, d=10, classes=3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_an_output_layer_started_at_zero_is_not_a_vanishing_signal():
    x, y = _blobs()
    torch.manual_seed(0)
    report = doctor.check(ZeroHeadNet(), x, y, nn.CrossEntropyLoss())
    assert not report.failed and not report.warnings, report.failed + report.warnings
    assert "zero weights of head" in str(report["variance propagation"].value)
    torch.manual_seed(0)
    every_layer_zero = ZeroHeadNet()
    for layer in every_layer_zero.body:
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    zeroed = doctor.check(every_layer_zero, x, y, nn.CrossEntropyLoss())
    assert zeroed["variance propagation"].status == zeroed["symmetry"].status == "fail"


class Standardizing(nn.Module):
    """Standardizes its input with running statistics kept in buffers of its own, then classifies."""

    def __init__(self, d=10, classes=3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("var", torch.ones(d))
        self.register_buffer("seen", torch.zeros(()))
        self.net = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.seen += 1
                self.mean.lerp_(x.mean(0), 1 / self.seen)
                self.var.lerp_(x.var(0), 1 / self.seen)
        return self.net((x - self.mean) / (self.var + 1e-5).sqrt())


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_every_layer_started_at_zero_is_named_by_symmetry_first():
    x, y = _blobs()
    torch.manual_seed(0)
    healthy = doctor.check(Standardizing(), 50 * x + 100, y, nn.CrossEntropyLoss())
    assert not healthy.failed and not healthy.warnings, healthy.failed + healthy.warnings
    zeroed = Standardizing()
    for layer in zeroed.net:
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    report = doctor.check(zeroed, 50 * x + 100, y, nn.CrossEntropyLoss())
    assert report["symmetry"].status == "fail"
    followers = [v for v in report.failed + report.warnings
                 if v.check in ("overfit a tiny subset", "input-independent baseline", "dead units")]
    assert followers and all(v.advice.startswith("fix 'symmetry' first:") for v in followers)


class ReZeroBlock(nn.Module):
    """x + alpha * f(x) with the residual scale alpha started at 0: the block is the identity at init (ReZero,
    Bachlechner et al. 2020)."""

    def __init__(self, d):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + self.alpha * self.f(x)


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_residual_scales_started_at_zero_are_not_an_exploding_signal():
    """The layers inside each branch get a gradient of exactly 0 until alpha moves on the first step: those
    gradients are not read as a ratio to 0."""
    x, y = _blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64), *[ReZeroBlock(64) for _ in range(4)], nn.Linear(64, 3))
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    assert report["variance propagation"].status == "pass", report["variance propagation"]
    assert "zero weights of 1.alpha" in str(report["variance propagation"].value)
    assert not report.failed, report.failed
