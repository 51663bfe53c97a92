"""Models as users write them, for the doctor's catalog: each a model, a batch, a loss and an optimizer, written
out here (no trainwell builder, no torchvision). ResNet-18 (He et al. 2016, table 1), a MobileNet-style
depthwise-separable stack (Howard et al. 2017) and a small ViT (Dosovitskiy et al. 2021) follow their papers.

``CATALOG[name]()`` returns a :class:`Case`; ``HEAVY`` lists the ones that take seconds (the slow set).
``SEVERAL_INPUTS[name]()`` returns models of more than one input: a text classifier ``forward(ids, mask)`` on
padded sequences, the same model fed a dict batch (``forward(batch)`` and ``model(**batch)``) and a two-tower
model of two float inputs."""

from __future__ import annotations

import copy
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Case:
    model: nn.Module
    #: one tensor, or several inputs: a tuple (``model(*x)``) or a dict (``model(**x)`` / ``model(x)``)
    x: torch.Tensor | tuple | dict
    y: torch.Tensor
    loss_fn: Callable
    lr: float = 1e-2
    #: a defect the doctor must name in a fail (a substring of a failing check's name or value), or None
    defect: str | None = None

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=self.lr)


def blobs(n=96, d=8, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centers = 3.0 * torch.randn(classes, d, generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def images(n=96, c=3, size=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, c, size, size, generator=g) * 0.5
    x[:, :, : size // 2] += y.view(-1, 1, 1, 1).float() * 0.5  # a class-dependent top half
    return x, y


def tokens(n=64, length=12, vocab=50, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    band = vocab // classes  # each class draws most of its tokens from its own band of the vocabulary
    x = torch.randint(0, band, (n, length), generator=g) + y[:, None] * band
    noise = torch.rand(n, length, generator=g) < 0.3
    return torch.where(noise, torch.randint(0, vocab, (n, length), generator=g), x), y


def mlp(d=8, out=4, hidden=32):
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


# -- plain models, losses with options -----------------------------------------------------------------------
def plain():
    torch.manual_seed(0)
    return Case(mlp(), *blobs(), nn.CrossEntropyLoss())


def functional_relu():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 4)

        def forward(self, x):
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    torch.manual_seed(0)
    return Case(Net(), *blobs(), F.cross_entropy)


def class_weights():
    torch.manual_seed(0)
    return Case(mlp(), *blobs(), nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5, 1.0])))


def nll_weights():
    torch.manual_seed(0)
    return Case(nn.Sequential(mlp(), nn.LogSoftmax(dim=1)), *blobs(), nn.NLLLoss(weight=torch.tensor([1.0, 2, 1, 1])))


def multi_margin():
    torch.manual_seed(0)
    return Case(mlp(), *blobs(), nn.MultiMarginLoss(weight=torch.tensor([1.0, 1.5, 1, 1])))


def ignore_index():
    torch.manual_seed(0)
    x, y = blobs()
    y = y.clone()
    y[::7] = -100  # unlabelled examples
    return Case(mlp(), x, y, nn.CrossEntropyLoss(ignore_index=-100))


def label_smoothing():
    torch.manual_seed(0)
    return Case(mlp(), *blobs(), nn.CrossEntropyLoss(label_smoothing=0.1))


def sum_reduction():
    torch.manual_seed(0)
    return Case(mlp(), *blobs(), nn.CrossEntropyLoss(reduction="sum"), lr=1e-3)


def bce_multilabel():
    torch.manual_seed(0)
    x, y = blobs()
    targets = F.one_hot(y, 4).float()
    targets[:, 0] = (x[:, 0] > 0).float()
    return Case(mlp(), x, targets, nn.BCEWithLogitsLoss())


def regression():
    torch.manual_seed(0)
    x, _ = blobs()
    return Case(mlp(out=2), x, torch.stack([x[:, 0] * 2, x[:, 1] - x[:, 2]], 1), nn.MSELoss())


# -- frozen parameters -------------------------------------------------------------------------------------
def frozen_first_layer():
    torch.manual_seed(0)
    model = mlp()
    model[0].requires_grad_(False)
    return Case(model, *blobs(), nn.CrossEntropyLoss())


def frozen_backbone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()), nn.Linear(64, 4))
    model[0].requires_grad_(False)
    return Case(model, *blobs(), nn.CrossEntropyLoss())


# -- output structures -------------------------------------------------------------------------------------
class TwoHeads(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)
        self.aux = nn.Linear(32, 2) if kind == "list" else None  # an auxiliary head, in the loss

    def forward(self, x):
        h = self.body(x)
        logits = self.head(h)
        if self.kind == "tuple":
            return logits, h
        if self.kind == "list":
            return [logits, self.aux(h)]
        if self.kind == "dict":
            return {"hidden": h, "logits": logits}
        if self.kind == "namedtuple":
            return Output(logits, h)
        return DataOutput(logits=logits, hidden=h)


Output = namedtuple("Output", ["logits", "hidden"])


@dataclass
class DataOutput:
    logits: torch.Tensor
    hidden: torch.Tensor


def tuple_output():
    torch.manual_seed(0)
    return Case(TwoHeads("tuple"), *blobs(), lambda o, t: F.cross_entropy(o[0], t))


def list_output_aux_loss():
    torch.manual_seed(0)
    x, y = blobs()
    return Case(TwoHeads("list"), x, y, lambda o, t: F.cross_entropy(o[0], t) + 0.3 * F.cross_entropy(o[1], t % 2))


def dict_output():
    torch.manual_seed(0)
    return Case(TwoHeads("dict"), *blobs(), lambda o, t: F.cross_entropy(o["logits"], t))


def namedtuple_output():
    torch.manual_seed(0)
    return Case(TwoHeads("namedtuple"), *blobs(), lambda o, t: F.cross_entropy(o.logits, t))


def dataclass_output():
    torch.manual_seed(0)
    return Case(TwoHeads("dataclass"), *blobs(), lambda o, t: F.cross_entropy(o.logits, t))


# -- registration ------------------------------------------------------------------------------------------
class PythonListLayers(nn.Module):
    """The bug: layers in a plain list are invisible to .parameters(), .to(), .double() and the optimizer."""

    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(8, 32), nn.Linear(32, 32)]
        self.out = nn.Linear(32, 4)

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.out(x)


def python_list_layers():
    torch.manual_seed(0)
    return Case(PythonListLayers(), *blobs(), nn.CrossEntropyLoss(), defect="layers")


def module_list():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(8, 32), nn.Linear(32, 32)])
            self.out = nn.Linear(32, 4)
            self.temperature = nn.Parameter(torch.ones(()))

        def forward(self, x):
            for layer in self.layers:
                x = F.relu(layer(x))
            return self.out(x) / self.temperature

    torch.manual_seed(0)
    return Case(Net(), *blobs(), nn.CrossEntropyLoss())


# -- normalization, dropout --------------------------------------------------------------------------------
def batchnorm_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    return Case(model, *images(), nn.CrossEntropyLoss())


def dropout_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(64, 4))
    return Case(model, *blobs(), nn.CrossEntropyLoss())


def groupnorm_layernorm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.GELU(), nn.Flatten(),
                          nn.LayerNorm(8 * 16 * 16), nn.Linear(8 * 16 * 16, 4))
    return Case(model, *images(), nn.CrossEntropyLoss())


# -- sequences ---------------------------------------------------------------------------------------------
class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab=50, dim=16, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        return self.fc(self.emb(x).mean(1))


def embedding():
    torch.manual_seed(0)
    return Case(BagOfEmbeddings(), *tokens(), nn.CrossEntropyLoss())


class RNNClassifier(nn.Module):
    def __init__(self, cell, vocab=50, dim=16, hidden=24, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = cell(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(self.emb(x))  # LSTM/GRU return (output, state): the tuple most users unpack
        return self.fc(out[:, -1])


def lstm():
    torch.manual_seed(0)
    return Case(RNNClassifier(nn.LSTM), *tokens(), nn.CrossEntropyLoss())


def gru():
    torch.manual_seed(0)
    return Case(RNNClassifier(nn.GRU), *tokens(), nn.CrossEntropyLoss())


class TransformerClassifier(nn.Module):
    def __init__(self, vocab=50, dim=32, classes=3, length=12):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        return self.fc(self.encoder(self.emb(x) + self.pos).mean(1))


def transformer_encoder():
    torch.manual_seed(0)
    return Case(TransformerClassifier(), *tokens(), nn.CrossEntropyLoss(), lr=3e-3)


class TiedLM(nn.Module):
    """A next-token model whose output projection is the embedding (Press & Wolf 2017)."""

    def __init__(self, vocab=40, dim=32):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.emb.weight
        nn.init.normal_(self.emb.weight, std=0.1)  # as an output layer the embedding must start small

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.out(h)  # (B, T, V)


def weight_tying():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    seq = (torch.randint(0, 40, (32, 1), generator=g) + torch.arange(11)) % 40  # counting: learnable
    return Case(TiedLM(), seq[:, :-1], seq[:, 1:],
                lambda o, t: F.cross_entropy(o.reshape(-1, o.shape[-1]), t.reshape(-1)))


def compiled():
    torch.manual_seed(0)
    return Case(torch.compile(mlp(), backend="eager"), *blobs(), nn.CrossEntropyLoss())


# -- architectures from their papers -----------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """He et al. 2016: a 7x7/2 stem, 3x3/2 max pool, four stages of two basic blocks (64-128-256-512)."""

    def __init__(self, classes=4, width=64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stages += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1))


def resnet18():
    torch.manual_seed(0)
    return Case(ResNet18(), *images(n=32, size=32), nn.CrossEntropyLoss(), lr=1e-3)


def mobilenet_style():
    """Depthwise 3x3 + pointwise 1x1 blocks with BatchNorm and ReLU6 (Howard et al. 2017, fig. 3)."""

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                             nn.ReLU6(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
                          block(16, 32, 1), block(32, 64, 2), block(64, 64, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4))
    return Case(model, *images(n=32, size=32), nn.CrossEntropyLoss(), lr=3e-3)


class ViT(nn.Module):
    """Patches -> linear embedding + class token + positions -> pre-norm Transformer encoder -> head on the class
    token (Dosovitskiy et al. 2021)."""

    def __init__(self, size=16, patch=4, dim=32, depth=2, heads=4, classes=4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        n = (size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, D)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos
        return self.head(self.norm(self.encoder(t))[:, 0])


def vit():
    torch.manual_seed(0)
    return Case(ViT(), *images(n=32), nn.CrossEntropyLoss(), lr=3e-3)


def unused_parameters():
    """A pooler defined but not used in forward (a real, harmless pattern): it must not crash anything."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = mlp()
            self.pooler = nn.Linear(4, 4)

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(0)
    return Case(Net(), *blobs(), nn.CrossEntropyLoss())


CATALOG: dict[str, Callable[[], Case]] = {f.__name__: f for f in (
    plain, functional_relu, class_weights, nll_weights, multi_margin, ignore_index, label_smoothing, sum_reduction,
    bce_multilabel, regression, frozen_first_layer, frozen_backbone, tuple_output, list_output_aux_loss,
    dict_output, namedtuple_output, dataclass_output, python_list_layers, module_list, batchnorm_cnn, dropout_mlp,
    groupnorm_layernorm, embedding, lstm, gru, transformer_encoder, weight_tying, compiled, resnet18,
    mobilenet_style, vit, unused_parameters)}
HEAVY = ("resnet18", "mobilenet_style", "vit", "transformer_encoder")


# -- several inputs ------------------------------------------------------------------------------------------
def padded_tokens(n=64, length=12, vocab=50, classes=3, seed=0):
    """Token ids (0 = padding, real tokens 1..vocab) of lengths 4..length, their mask and the labels."""
    ids, y = tokens(n, length, vocab, classes, seed)
    lengths = 4 + torch.arange(n) % (length - 3)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return (ids + 1) * mask, mask, y


class MaskedBag(nn.Module):
    """Mean of the real tokens' embeddings (the mask drops the padding), then an MLP."""

    def __init__(self, vocab=51, dim=16, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.ff = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, ids, mask):
        e = self.emb(ids) * mask[..., None]
        return self.ff(e.sum(1) / mask.sum(1, keepdim=True).clamp_min(1))


class DictBatch(MaskedBag):
    """The same model written for a dict batch: ``model(batch)``."""

    def forward(self, batch):
        return super().forward(batch["ids"], batch["mask"])


class TwoTower(nn.Module):
    """A user tower and an item tower of float features, concatenated into a classifier."""

    def __init__(self, du=6, di=4, classes=3):
        super().__init__()
        self.user = nn.Sequential(nn.Linear(du, 16), nn.Tanh())
        self.item = nn.Sequential(nn.Linear(di, 16), nn.Tanh())
        self.head = nn.Linear(32, classes)

    def forward(self, user, item):
        return self.head(torch.cat([self.user(user), self.item(item)], 1))


def two_towers(n=96, classes=3, seed=0):
    """(user, item) float features and labels that need both: the class is the argmax of 3 user features plus
    3 item features."""
    g = torch.Generator().manual_seed(seed)
    user, item = torch.randn(n, 6, generator=g), torch.randn(n, 4, generator=g)
    return user, item, (user[:, :classes] + item[:, :classes]).argmax(1)


def masked_bag():
    torch.manual_seed(0)
    ids, mask, y = padded_tokens()
    return Case(MaskedBag(), (ids, mask), y, nn.CrossEntropyLoss())


def dict_batch():
    torch.manual_seed(0)
    ids, mask, y = padded_tokens()
    return Case(DictBatch(), {"ids": ids, "mask": mask}, y, nn.CrossEntropyLoss())


def keyword_batch():
    torch.manual_seed(0)
    ids, mask, y = padded_tokens()
    return Case(MaskedBag(), {"mask": mask, "ids": ids}, y, nn.CrossEntropyLoss())  # model(**batch)


def two_tower():
    torch.manual_seed(0)
    user, item, y = two_towers()
    return Case(TwoTower(), (user, item), y, nn.CrossEntropyLoss())


SEVERAL_INPUTS: dict[str, Callable[[], Case]] = {f.__name__: f for f in (masked_bag, dict_batch, keyword_batch,
                                                                          two_tower)}


def fresh(name: str) -> Case:
    """A new case (models are trained by the tests: never share one)."""
    return copy.deepcopy({**CATALOG, **SEVERAL_INPUTS}[name]())
