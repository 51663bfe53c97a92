"""The forms data comes in, read as ``(x, y)`` tensors or batches: what :class:`~trainwell.train.trainer.Trainer`
accepts (arrays held in memory, a DataLoader, tuple or dict batches) and how it tells them apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

INPUT_KEYS = ("x", "input", "inputs", "image", "images", "pixel_values", "features", "data")
TARGET_KEYS = ("y", "target", "targets", "label", "labels")


def is_array(v) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray))


def as_tensor(v, what: str) -> torch.Tensor:
    """``v`` as a tensor: tensors as they are, NumPy arrays through :func:`torch.as_tensor` (dtype kept)."""
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, np.ndarray):
        return torch.as_tensor(np.ascontiguousarray(v))
    if isinstance(v, (tuple, list)) and v and all(is_array(t) for t in v):
        raise TypeError(several_tensors_message(v, what))
    raise TypeError(f"{what} must be a tensor or a NumPy array, got {type(v).__name__}")


def several_tensors_message(v: tuple | list, what: str) -> str:
    """The one line for a batch's inputs (or targets) given as several tensors, ``((x1, x2), y)``: the model is
    called with one tensor, so say how to make one."""
    if what.endswith("inputs"):
        return (f"{what} are a {type(v).__name__} of {len(v)} tensors (a batch such as ((x1, x2), y)): tuple inputs "
                f"are not supported, the model is called with one tensor; pack them into one (torch.cat([x1, x2], "
                f"dim=1) in the dataset or a collate_fn) and split it in the model's forward")
    return (f"{what} are a {type(v).__name__} of {len(v)} tensors: several targets are not supported; give one "
            f"tensor (stack or concatenate them) and a loss_fn that splits it")


def take_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` for a tensor ``t`` and long indices ``idx`` of any shape (the result has shape
    ``idx.shape + t.shape[1:]``), through ``index_select``: the same values, 2-4x faster than advanced indexing on
    a CPU (one contiguous gather instead of the general indexing kernel)."""
    if idx.dim() == 1:  # one model's batch (the hot path): no reshaping around the gather
        return t.index_select(0, idx)
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def check_batch_keys(keys, where: str = "Trainer") -> tuple[str, str] | None:
    """``keys`` as an ``(input_key, target_key)`` tuple, or None; anything else (one key, three, not strings) is
    refused in one line naming ``where`` it was given."""
    if keys is None:
        return None
    if isinstance(keys, (tuple, list)) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        return tuple(keys)
    raise TypeError(f"{where}(batch_keys={keys!r}) is not allowed: give two key names, the inputs' and the "
                    f"targets', e.g. batch_keys=('signal', 'label')")


def _keys_call(what: str) -> str:
    """The call that takes ``batch_keys`` for data read as ``what`` (``"lr_range_test"`` or a Trainer's split)."""
    return "lr_range_test" if what.startswith("lr_range_test") else "Trainer"


def split_batch(batch, what: str = "train", keys: tuple[str, str] | None = None) -> tuple:
    """The ``(inputs, targets)`` of one batch: a pair (or longer tuple/list: its first two items) or a mapping.

    A mapping's inputs and targets are ``keys`` when given, else the first of :data:`INPUT_KEYS` and of
    :data:`TARGET_KEYS` it has (``{"image": ..., "label": ...}`` works as it is).

    Raises:
        TypeError: a batch that is neither, or a mapping without a known key (the message lists its keys).
    """
    if isinstance(batch, Mapping):
        if keys is not None:
            missing = [k for k in keys if k not in batch]
            if missing:
                raise TypeError(f"{what}: batch_keys {keys!r} names {missing[0]!r}, which the batch does not have: "
                                f"its keys are {', '.join(map(repr, batch))}")
            return batch[keys[0]], batch[keys[1]]
        xk = next((k for k in INPUT_KEYS if k in batch), None)
        yk = next((k for k in TARGET_KEYS if k in batch), None)
        if xk is None or yk is None:
            raise TypeError(f"{what}: a dict batch with keys {', '.join(map(repr, batch))} has no "
                            f"{'input' if xk is None else 'target'} key trainwell knows (inputs: "
                            f"{', '.join(INPUT_KEYS)}; targets: {', '.join(TARGET_KEYS)}): name yours with "
                            f"{_keys_call(what)}(..., batch_keys=('input_key', 'target_key'))")
        return batch[xk], batch[yk]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(f"{what}: each batch must be an (x, y) pair or a dict such as {{'x': ..., 'y': ...}}, got "
                    f"{type(batch).__name__}")


def inputs_of(batch, what: str = "predict", keys: tuple[str, str] | None = None):
    """The inputs of one batch for a call that reads no targets (``predict``): a dict batch needs only its input
    key (unlabelled data has no target key); any other batch as :func:`split_batch` reads it."""
    if isinstance(batch, Mapping):
        key = keys[0] if keys is not None else next((k for k in INPUT_KEYS if k in batch), None)
        if key is None or key not in batch:
            raise TypeError(f"{what}: a dict batch with keys {', '.join(map(repr, batch))} has no input key "
                            + (f"{key!r}" if key is not None else f"trainwell knows ({', '.join(INPUT_KEYS)})")
                            + f": name yours with {_keys_call(what)}(..., batch_keys=('input_key', 'target_key'))")
        return batch[key]
    return split_batch(batch, what, keys)[0]


def unread_keys(batch, keys: tuple[str, str] | None = None) -> tuple[str, list[str]]:
    """``(input key, other keys)`` of a dict batch: the keys beside its input and target that hold arrays of the
    batch's length (a second input, such as ``meta`` beside ``image``), which the model is not called with;
    ``("", [])`` for any other batch."""
    if not isinstance(batch, Mapping):
        return "", []
    try:
        x, y = split_batch(batch, "train", keys)
    except TypeError:  # unlabelled (predict): the input key alone
        try:
            x, y = inputs_of(batch, "predict", keys), None
        except TypeError:
            return "", []
    input_key = next(k for k, v in batch.items() if v is x)
    unread = [k for k, v in batch.items() if v is not x and v is not y and is_array(v) and v.ndim >= 1
              and len(v) == len(x)]
    return input_key, unread


#: what a forward written for a whole dict raises on one tensor (``x["meta"]``, ``x.keys()``, torch's own errors)
UNREAD_KEY_ERRORS = (IndexError, KeyError, AttributeError, RuntimeError)


def unread_keys_message(input_key: str, unread: list[str], error: Exception) -> str:
    """The one line for a model whose forward failed on a dict batch's inputs while other keys were not passed."""
    first = (str(error).strip().splitlines() or [""])[0]
    return (f"the model's forward failed ({type(error).__name__}: {first}) on the batch's {input_key!r} tensor, "
            f"which is all the model is called with: the batch's {', '.join(map(repr, unread))} "
            f"{'is' if len(unread) == 1 else 'are'} not passed (a model is called with one input tensor); pack the "
            f"inputs into one tensor (torch.cat in the dataset or a collate_fn) and split it in forward")


def check_lengths(x: torch.Tensor, y: torch.Tensor, what: str, where: str = "") -> None:
    """Refuse inputs and targets of different lengths (``where``: e.g. " in a batch"), before any step: extra
    targets would be ignored without a word (the data is very likely misaligned), too few fail deep in indexing.

    Raises:
        ValueError: ``len(x) != len(y)``, naming both counts, or a 0-d input or target (one value without a
            batch axis: torch would fail indexing it, or pair it with every input).
    """
    if not x.dim() or not y.dim():
        raise ValueError(f"{what}: got inputs of shape {tuple(x.shape)} and targets of shape {tuple(y.shape)}"
                         f"{where}: a {'target' if not y.dim() else 'input'} without a batch axis; give a batch of "
                         f"examples, (N, ...) inputs and N targets (x.unsqueeze(0), y.unsqueeze(0) for one example)")
    if len(x) != len(y):
        raise ValueError(f"{what}: got {len(x)} inputs but {len(y)} targets{where}: give one target per input")


def is_in_memory(data) -> bool:
    """Whether ``data`` is a whole dataset held as arrays: an ``(x, y)`` pair or a mapping of two arrays."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(is_array(t) for t in data):
        return True
    return isinstance(data, Mapping) and len(data) > 0 and all(is_array(v) for v in data.values())


def as_tensors(data, what: str = "train", keys: tuple[str, str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors (NumPy arrays converted) from arrays held in memory; any other iterable of batches (a
    ``DataLoader``) is read once and concatenated: what a vmapped population trains on, since its members draw
    their own batches from one tensor. A single model's :meth:`Trainer.fit` iterates a loader instead."""
    if is_in_memory(data):
        x, y = split_batch(data, what, keys)
        return as_tensor(x, f"{what} inputs"), as_tensor(y, f"{what} targets")
    require_iterable(data, what)
    pairs = [split_batch(b, what, keys) for b in data]
    if not pairs:
        raise TypeError(f"{what}: the loader yielded no batches")
    return (torch.cat([as_tensor(p[0], f"{what} inputs") for p in pairs]),
            torch.cat([as_tensor(p[1], f"{what} targets") for p in pairs]))


def require_iterable(data, what: str) -> None:
    """Refuse data that is not an iterable of batches (a tensor, a string), and an ``((x1, x2), y)`` pair of
    in-memory arrays: several input tensors, which the model would not be called with."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and is_array(data[1]) and \
            isinstance(data[0], (tuple, list)) and data[0] and all(is_array(t) for t in data[0]):
        raise TypeError(several_tensors_message(data[0], f"{what} inputs"))
    if isinstance(data, (torch.Tensor, np.ndarray, str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(f"{what}: Trainer.fit takes (x, y) tensors or an iterable of (x, y) batches such as a "
                        f"DataLoader, got {type(data).__name__}")


def loader_generators(loader) -> list[torch.Generator]:
    """The torch generators a loader draws its order (and worker seeds) from, besides torch's global RNG."""
    found = []
    for obj in (loader, getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None),
                                                                    "sampler", None)):
        g = getattr(obj, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found
