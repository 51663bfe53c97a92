"""The lab's experiments, in the order ``trainwell lab list`` shows and ``--all`` runs them.

:data:`CATALOG` is the static description of each experiment (its module, expected seconds at quick and default
size, and claim): ``trainwell lab list`` and the name check of ``trainwell lab run`` read it without importing an
experiment (and torch with it), so they answer in well under a second. ``tests/lab/test_registry.py`` checks it
against the modules, so it cannot drift from them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple


class Entry(NamedTuple):
    """What the lab's listing shows of an experiment, without importing it."""

    module: str  # under trainwell.lab
    quick_s: int  # the module's EXPECTED_S["quick"]
    default_s: int  # the module's EXPECTED_S["default"]
    claim: str  # the module's CLAIM


# name (each module's NAME, its command-line name) -> entry; part 2 (stopping, preprocessing, initialization,
# normalization, optimization, debugging, CNNs) starts at deep-relu-init
CATALOG = {
    'capacity': Entry('capacity', 2, 26,
        'More hidden neurons represent more complex functions: train accuracy rises with width, and the '
        'widest net has the largest train-test gap without regularization'),
    'regularization-strength': Entry('regularization_strength', 2, 8,
        'Regularization strength controls overfitting: validation accuracy vs L2 lambda peaks in the '
        'middle, and too large a lambda underfits (train accuracy falls)'),
    'model-ladder': Entry('model_ladder', 9, 11,
        'On MNIST-1D, logistic regression < MLP < CNN in test accuracy (paired over the test signals), '
        'each within 5 points of the published 32% / 68% / 94%'),
    'random-labels': Entry('random_labels', 10, 18,
        'Networks memorize random labels: train accuracy >= 99% on random labels (and random pixels) '
        'with test accuracy at chance, after more steps than the true labels need'),
    'encoder-8-3-8': Entry('encoder838', 1, 2,
        'An 8x3x8 network with sigmoid hidden units reconstructs all 8 one-hot patterns through a 3-unit'
        ' hidden code'),
    'xor-direct-connections': Entry('xor_direct', 3, 13,
        'A linear model cannot fit XOR; hidden units can; direct input-output connections make hidden '
        'units learn XOR faster'),
    'l1-vs-l2': Entry('l1_vs_l2', 5, 21,
        'At matched accuracy, L1 leaves a far larger fraction of weights near zero than L2'),
    'adam-l2-vs-adamw': Entry('adam_decay', 4, 20,
        'With Adam, decoupled weight decay (AdamW) generalizes better (by at least 1 point of test '
        'accuracy) than coupled L2 when each is at its best lambda; the weight norms of the two differ'),
    'dropout': Entry('dropout_exp', 7, 10,
        'Vanilla and inverted dropout give the same test-time expectation, and dropout generalizes '
        'better on a small training set: higher test accuracy and a narrower train-val gap'),
    'lottery-ticket': Entry('lottery_ticket', 16, 48,
        'Iterative magnitude pruning with reset to theta_0 finds a ticket (<= 20% of weights left) that '
        "beats random re-initialization and random pruning at the same density, matches the dense net's "
        'test accuracy and reaches its best validation loss no later than the dense net'),
    'double-descent': Entry('double_descent', 10, 106,
        'With label noise, test error at the interpolation threshold is above both the best narrower '
        "model's and the widest model's (double descent)"),
    'grokking': Entry('grokking', 8, 34,
        'With small weight decay a network reaches 95% test accuracy on modular addition long after 99% '
        'train accuracy (>= 5x the steps); with large weight decay it generalizes earlier'),
    'deep-relu-init': Entry('deep_relu_init', 3, 85,
        'A 30-layer plain ReLU net trains with He init and stalls with Xavier (loss stays near ln 10); '
        'at 22 layers both train, He earlier'),
    'init-symmetry-and-scale': Entry('init_symmetry', 3, 4,
        'Zero init leaves all hidden units identical after training although their weights move; N(0, '
        '0.01^2) init collapses the activations of a deep tanh net layer after layer'),
    'init-histograms': Entry('init_histograms', 2, 5,
        'With standard init, activation and back-propagated gradient spreads shrink with depth '
        '(gradients toward the input); with normalized (Xavier) init both stay roughly level'),
    'batchnorm': Entry('batchnorm', 3, 22,
        "BatchNorm speeds training and rescues a bad init; training only BN's gamma/beta is far above "
        'chance and above as many random parameters; dropout before BN shifts the variance and both '
        'fixes reduce the shift'),
    'preprocessing': Entry('preprocessing', 6, 6,
        'Centering, normalization, PCA and whitening do what the cs231n figure shows; whitened '
        'covariance is ~ identity; normalized and whitened inputs train faster with plain SGD than raw '
        'ones'),
    'stopping-criteria': Entry('stopping_criteria', 3, 4,
        "Of the lecture's four stopping criteria applied to the same run, validation early stopping "
        "(best epoch restored) stops at the best generalization; the pipeline's early stopping restores "
        'that epoch'),
    'optimizers': Entry('optimizers', 6, 55,
        'Tuned adaptive methods (RMSprop, Adam) are slightly favorable to tuned plain SGD on the same '
        'task, by more than the run-to-run spread; the full ranking is reported with its spread'),
    'lr-diagnosis': Entry('lr_diagnosis', 3, 3,
        'The doctor labels loss curves from four learning rates as too high / high / good / too low, '
        'correctly over seeds and two batch sizes'),
    'cnn-vs-mlp': Entry('cnn_vs_mlp', 5, 81,
        'A CNN beats an MLP in sample efficiency on MNIST-1D and digits, and loses its advantage on '
        'MNIST-1D when the positions are permuted'),
    'filters-and-equivariance': Entry('filters_equivariance', 1, 1,
        "Smoothing filters lower an image's variation and sharpening raises it; convolution is shift-"
        'equivariant, pooling adds local shift invariance, and neither is rotation-equivariant'),
    'mixture-of-experts': Entry('mixture_of_experts', 4, 4,
        "On two-regime data the gate specializes (most cases' max responsibility > 0.9, regimes split "
        'between experts) and the mixture beats a single model with the same number of parameters'),
    'neocognitron': Entry('neocognitron', 1, 1,
        'Add-if-Silent features on digits give a higher nearest-prototype test accuracy than the raw '
        'pixels; more cell-planes are created at higher learning thresholds'),
    'pretraining': Entry('pretraining', 2, 54,
        'With few labels, denoising-autoencoder pretraining on unlabelled data gives higher test '
        'accuracy than training the same net from scratch'),
}

MODULES = [e.module for e in CATALOG.values()]


def names() -> list[str]:
    """The experiments' command-line names, in order (no experiment is imported)."""
    return list(CATALOG)


def experiments() -> dict[str, ModuleType]:
    """Return ``{name: module}`` for every registered experiment."""
    mods = [importlib.import_module(f"trainwell.lab.{m}") for m in MODULES]
    return {m.NAME: m for m in mods}


def unknown(name: str, known) -> str:
    """The one-line error for an experiment name that is not in ``known``: the nearest name, then all of them."""
    from trainwell.config_io import suggest

    return f"unknown experiment {name!r}: {suggest(name, known)}allowed are {', '.join(known)}"


def get(name: str) -> ModuleType:
    """Return the experiment module called ``name``; raise KeyError naming the nearest and the allowed ones."""
    exps = experiments()
    if name not in exps:
        raise KeyError(unknown(name, exps))
    return exps[name]


def listing() -> list[dict]:
    """One row per experiment from :data:`CATALOG`: name, claim and expected seconds (no experiment imported)."""
    return [{"name": n, "claim": e.claim, "expected_s": {"quick": e.quick_s, "default": e.default_s}}
            for n, e in CATALOG.items()]


def describe() -> list[dict]:
    """One row per experiment: name, claim, paper, sizes (their Config fields) and expected seconds."""
    from dataclasses import asdict

    rows = []
    for name, mod in experiments().items():
        rows.append({"name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "expected_s": dict(mod.EXPECTED_S),
                     "quick": asdict(mod.Config.quick()), "default": asdict(mod.Config())})
    return rows
