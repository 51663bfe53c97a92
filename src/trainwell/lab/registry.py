"""The lab's experiments, in the order ``trainwell lab list`` shows and ``--all`` runs them."""

from __future__ import annotations

import importlib
from types import ModuleType

# module names under trainwell.lab; each module's NAME is its command-line name
MODULES = [
    "capacity",
    "regularization_strength",
    "model_ladder",
    "random_labels",
    "encoder838",
    "xor_direct",
    "l1_vs_l2",
    "adam_decay",
    "dropout_exp",
    "lottery_ticket",
    "double_descent",
    "grokking",
    # part 2: stopping, preprocessing, initialization, normalization, optimization, debugging, CNNs
    "deep_relu_init",
    "init_symmetry",
    "init_histograms",
    "batchnorm",
    "preprocessing",
    "stopping_criteria",
    "optimizers",
    "lr_diagnosis",
    "cnn_vs_mlp",
    "filters_equivariance",
    "mixture_of_experts",
    "neocognitron",
    "pretraining",
]


def experiments() -> dict[str, ModuleType]:
    """Return ``{name: module}`` for every registered experiment."""
    mods = [importlib.import_module(f"trainwell.lab.{m}") for m in MODULES]
    return {m.NAME: m for m in mods}


def get(name: str) -> ModuleType:
    """Return the experiment module called ``name``; raise KeyError naming the allowed ones."""
    exps = experiments()
    if name not in exps:
        raise KeyError(f"unknown experiment {name!r}: allowed are {', '.join(exps)}")
    return exps[name]


def describe() -> list[dict]:
    """One row per experiment: name, claim, paper, sizes (their Config fields) and expected seconds."""
    from dataclasses import asdict

    rows = []
    for name, mod in experiments().items():
        rows.append({"name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "expected_s": dict(mod.EXPECTED_S),
                     "quick": asdict(mod.Config.quick()), "default": asdict(mod.Config())})
    return rows
