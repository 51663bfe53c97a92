"""Which config keys a configuration reads: a key the user set (in the file or with ``--set``) that the chosen
optimizer, schedule, preprocessing or trainable set ignores changes nothing but the run's name, and
``trainwell fit`` says so in one line before training (``optim.momentum`` beside ``optim.name = "adam"``: Adam's
momentum is its ``betas``; ``regularize.l2`` under ``train.trainable = "norm"``: no trained weight is penalized).
The model keys of the other model kind are refused outright (:data:`trainwell.config.KIND_KEYS`); these are
notes, since a sweep may set a key that only some of its members read.

Example:
    >>> from trainwell.config import load_config
    >>> unread_notes(load_config(None, ["optim.momentum=0.5"]), None, ["optim.momentum=0.5"])
    ["optim.momentum is not read by optim.name = 'adam' (only by 'momentum'): it changes nothing in this run"]
"""

from __future__ import annotations

from pathlib import Path

from trainwell.config_io import parse_override, read_toml

#: key -> (the key that decides whether it is read, the values of that key that read it)
READ_ONLY_BY = {
    "optim.momentum": ("optim.name", ("momentum",)),
    "optim.nesterov": ("optim.name", ("momentum",)),
    "optim.betas": ("optim.name", ("adam",)),
    "optim.eps": ("optim.name", ("adam", "rmsprop", "adagrad")),
    "optim.alpha": ("optim.name", ("rmsprop",)),
    "optim.rmsprop_momentum": ("optim.name", ("rmsprop",)),
    "optim.step_size": ("optim.schedule", ("step",)),
    "optim.gamma": ("optim.schedule", ("step",)),
    "optim.patience": ("optim.schedule", ("plateau",)),
    "optim.factor": ("optim.schedule", ("plateau",)),
    "optim.min_lr": ("optim.schedule", ("cosine", "plateau")),
    "optim.warmup_fraction": ("optim.schedule", ("onecycle",)),
    "preprocess.n_components": ("preprocess.kind", ("pca",)),
    "preprocess.whiten": ("preprocess.kind", ("pca",)),
    "preprocess.eps": ("preprocess.kind", ("pca", "zca")),
    # train.trainable = "norm" trains only normalization scales and shifts, which no weight penalty touches
    "regularize.l1": ("train.trainable", ("all",)),
    "regularize.l2": ("train.trainable", ("all",)),
    "regularize.max_norm": ("train.trainable", ("all",)),
    "optim.weight_decay": ("train.trainable", ("all",)),
}

#: key -> (the setting of its reader under which a second key decides, that key, the value that reads it)
READ_ONLY_WHEN = {
    "preprocess.eps": ("preprocess.kind", "pca", "preprocess.whiten", True),  # PCA divides by sqrt(var + eps)
}


def given_keys(path: str | Path | None, overrides: list[str]) -> set[str]:
    """The dotted keys the user set: the config file's (tables flattened one level; a whole config as trainwell
    writes it into a run sets none on purpose) and the ``--set`` ones."""
    from trainwell.config import written_whole

    keys = {".".join(parse_override(item)[0]) for item in overrides}
    raw = read_toml(path) if path is not None else {}
    if written_whole(raw):  # a run's config.toml records every setting: it chose none of them on purpose
        return keys
    for table, values in raw.items():
        if isinstance(values, dict):
            keys |= {f"{table}.{key}" for key in values}
    return keys


def unread_notes(cfg, path: str | Path | None, overrides: list[str], varied: set[str] = frozenset()) -> list[str]:
    """One line for each key the user set that ``cfg`` does not read, naming the setting that would read it;
    ``varied``: keys a sweep's grid varies (a key they decide is read by some members: no note)."""
    notes = []
    for key in sorted(given_keys(path, overrides) & set(READ_ONLY_BY)):
        decider, readers = READ_ONLY_BY[key]
        if decider in varied:
            continue
        section, field = decider.split(".")
        value = getattr(getattr(cfg, section), field)
        if value not in readers:
            by = " or ".join(repr(r) for r in readers)
            notes.append(f"{key} is not read by {decider} = {value!r} (only by {by}): it changes nothing in this "
                         "run")
        elif key in READ_ONLY_WHEN and READ_ONLY_WHEN[key][1] == value and READ_ONLY_WHEN[key][2] not in varied:
            _, _, second, wanted = READ_ONLY_WHEN[key]
            section, field = second.split(".")
            if getattr(getattr(cfg, section), field) != wanted:
                notes.append(f"{key} is not read by {decider} = {value!r} without {second} = "
                             f"{str(wanted).lower()}: it changes nothing in this run")
    return notes
