"""How a :class:`~trainwell.train.trainer.Trainer` reads data and evaluates: the data forms it accepts (on the
learner's device, class labels cast), validation during training, and ``validate`` / ``test`` / ``predict``
after it. A mixin: the loop itself is in :mod:`trainwell.train.trainer`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch

from trainwell.data.labels import as_class_labels
from trainwell.nn.modes import module_modes, restore_modes
from trainwell.train.batches import (
    UNREAD_KEY_ERRORS,
    as_tensor,
    as_tensors,
    check_lengths,
    inputs_of,
    is_array,
    is_in_memory,
    loader_generators,
    require_iterable,
    split_batch,
    unread_keys,
    unread_keys_message,
)
from trainwell.train.first_layer import first_layer_hint, unbatched_hint
from trainwell.train.input_checks import integer_inputs_hint
from trainwell.train.learners import CLASS_INDEX_LOSSES, LOSSES, class_scores, eval_rows

# what a forward of the model raises that may be named: a dict batch's unread keys, a first layer refusing the
# data's shape (RuntimeError), one example without its batch axis reaching a BatchNorm (ValueError)
FORWARD_ERRORS = (*UNREAD_KEY_ERRORS, ValueError)


def nonfinite_data_note(x: torch.Tensor | None, y: torch.Tensor | None) -> str:
    """``": the training inputs hold 3 NaN/inf values (in 2 of 40 rows) ..."`` for in-memory training data with
    NaN or infinite values, the usual cause of a non-finite loss from the first epoch; ``""`` otherwise (clean
    data, or a loader's batches, which are not kept)."""
    notes = []
    for t, name in ((x, "inputs"), (y, "targets")):
        if t is None or not t.is_floating_point() or not t.numel():
            continue
        bad = ~torch.isfinite(t)
        count = int(bad.sum())
        if count:
            rows = int(bad.reshape(len(t), -1).any(1).sum()) if t.dim() else 1
            notes.append(f"the training {name} hold {count} NaN/inf values (in {rows} of {len(t)} rows)")
    if not notes:
        return ""
    return (": " + " and ".join(notes) + ": impute or drop them before fit (torch.nan_to_num(x), or keep the rows "
            "where torch.isfinite(x).flatten(1).all(1))")


class TrainerIO:
    """Data in and metrics out for a trainer (``self.learner``, ``self.device``, ``self.batch_keys``)."""

    # -- data ----------------------------------------------------------------------------------------------
    def _targets(self, y: torch.Tensor, what: str) -> torch.Tensor:
        # class-index losses (the named ones, torch's CrossEntropyLoss / NLLLoss / MultiMarginLoss modules):
        # int32/uint8 labels are cast to the int64 torch's kernels take
        if any(self.loss_fn is f for f in LOSSES.values()) or \
                isinstance(self.loss_fn, CLASS_INDEX_LOSSES) and not y.is_floating_point():
            return as_class_labels(y, f"{what} labels")
        return y

    def _check_inputs(self, x: torch.Tensor, what: str) -> None:
        self.learner.check_inputs(x, what)

    def _device_batch(self, batch, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = split_batch(batch, what, self.batch_keys)
        x, y = as_tensor(x, f"{what} inputs"), as_tensor(y, f"{what} targets")
        check_lengths(x, y, what, " in a batch")
        return x.to(self.device, non_blocking=True), self._targets(y.to(self.device, non_blocking=True), what)

    def _member_rows(self, x: torch.Tensor) -> int:
        """The training rows each model draws its batches from: ``len(x)``, or the learner's ``rows(x)`` (a
        population whose members train on rows of their own, (M, N, ...))."""
        rows = getattr(self.learner, "rows", None)
        return len(x) if rows is None else rows(x)

    def _in_memory(self, data, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = as_tensors(data, what, self.batch_keys)
        if not hasattr(self.learner, "check_label_shape"):  # a population checks its (N,) or (M, N) labels itself
            check_lengths(x, y, what)
        return x.to(self.device), self._targets(y, what).to(self.device)

    def _evaluate(self, data, what: str) -> tuple[list[float], list[float]]:
        """Per-member mean loss and accuracy on ``data`` (tensors, or a loader iterated once, in eval mode)."""
        if not isinstance(data, tuple) and not self._iterates:
            data = self._in_memory(data, what)
        if isinstance(data, tuple):  # on the device
            try:
                return self.learner.evaluate(data[0], data[1])
            except FORWARD_ERRORS as e:
                self._explain(e, data[0][: eval_rows(data[0].device)], what)  # the chunk that failed
                raise
        seen: list = []  # the batch being evaluated and its inputs, to name what the model refuses

        def batches():
            for b in data:
                xb, yb = self._device_batch(b, what)
                seen[:] = [b, xb]
                yield xb, yb

        try:
            return self.learner.evaluate_batches(batches())
        except FORWARD_ERRORS as e:
            if seen:
                self._explain(e, seen[1], what, seen[0])
            raise

    def _explain(self, error: Exception, x: torch.Tensor, what: str, batch=None) -> None:
        """Raise the one-line error for a forward of the model that failed on inputs like ``x`` (a shape its
        first layer refuses, integer inputs met by a floating-point layer, a dict ``batch`` whose other keys the
        model is not given), as training names them; return when none is the cause (the caller re-raises)."""
        if not self.single:
            return
        if isinstance(error, ValueError):  # BatchNorm refuses one unbatched example so (and trainwell's checks)
            hint = unbatched_hint(self.learner.model, x, what)
            if hint is not None:
                raise ValueError(hint) from None
            return
        input_key, unread = unread_keys(batch, self.batch_keys)
        if unread:
            raise TypeError(unread_keys_message(input_key, unread, error)) from error
        if not isinstance(error, RuntimeError):
            return
        hint = integer_inputs_hint(x, error, what)
        if hint is not None:
            raise TypeError(hint) from None
        hint = first_layer_hint(self.learner.model, x, what)
        if hint is not None:
            raise ValueError(hint) from None

    @staticmethod
    def _keras_call(train, val, validation_data):
        """Accept Keras' ``fit(x, y, validation_data=(x_val, y_val))`` beside ``fit((x, y), (x_val, y_val))``."""
        if is_array(train):
            if not is_array(val):
                raise TypeError(f"fit got inputs ({type(train).__name__}) without targets: call "
                                f"fit((x, y), (x_val, y_val)), fit(x, y) or fit(loader)")
            return (train, val), validation_data
        if validation_data is not None:
            if val is not None:
                raise TypeError("fit got both val and validation_data: pass one of them")
            val = validation_data
        return train, val

    def _train_data(self, train) -> tuple:
        """``(x, y, None)``: tensors on the device, batched here; or ``(None, None, loader)``: a loader whose
        batches the learner takes as they come (its generators restored on resume)."""
        if is_in_memory(train) or not self._iterates:
            loader = not is_in_memory(train)  # read into memory: this learner draws its own batches
            x, y = self._in_memory(train, "train")
            if not len(x):
                raise ValueError("train: got 0 examples (the inputs and targets are empty): give fit the training "
                                 "data")
            if self.batch_size is None:
                raise ValueError(
                    "Trainer(batch_size=...) is needed: this learner reads the DataLoader's data into memory and "
                    "draws its own batches (use an integer >= 1)" if loader else
                    "Trainer(batch_size=...) is needed to batch tensors (a DataLoader brings its own): use an "
                    "integer >= 1")
            if loader:  # what the user's loader would have done does not happen: say so once
                warnings.warn(f"this learner ({type(self.learner).__name__}) read the DataLoader's {len(x)} examples "
                              f"into memory once and draws its own batches of {self.batch_size}: the loader's "
                              f"batch size, shuffling and any random augmentation in its dataset are not used",
                              UserWarning, stacklevel=3)
            self._check_inputs(x, "train")
            plan_fit = getattr(self.learner, "plan_fit", None)  # a population sizes its schedules' tables
            if plan_fit is not None:
                plan_fit(self.epochs, -(-self._member_rows(x) // self.batch_size))
            self._loader_rngs, self._pending_loader_rng = [], None
            return x, y, None
        require_iterable(train, "train")
        self._loader_rngs = loader_generators(train)
        for g, saved in zip(self._loader_rngs, self._pending_loader_rng or [], strict=False):
            g.set_state(saved)
        self._pending_loader_rng = None
        self._checked = False  # the loader's first batch is checked for the inputs' dtype
        return None, None, train

    def _val_data(self, val):
        """Validation data as tensors on the device, or a loader iterated at each evaluation; None without
        validation. Empty tensors are refused: they would silently mean no validation (a split that holds out
        none, as ``data.val_fraction = 0`` gives, is passed as None by the pipeline)."""
        if val is None:
            return None
        if is_in_memory(val) or not self._iterates:
            val = self._in_memory(val, "val")
            if not len(val[0]):
                raise ValueError("val: got 0 examples (the validation inputs and targets are empty): give fit "
                                 "validation data with at least one example, or leave it out (fit(train)) to "
                                 "train without validation")
            self._check_inputs(val[0], "val")
            check_shape = getattr(self.learner, "check_label_shape", None)  # a population: (N,) or (M, N) labels
            if check_shape is not None:
                check_shape(val[0], val[1], "val")
            return val
        require_iterable(val, "val")
        return val

    # -- after training ------------------------------------------------------------------------------------
    def _one_model(self, what: str) -> None:
        if not self.single:
            raise TypeError(f"Trainer.{what} works on one model; for a population, learner.evaluate(x, y) gives "
                            f"every member's loss and accuracy, and after learner.base.eval(), "
                            f"learner.forward(x, shared=True) their outputs (members, batch, classes)")

    def _metrics(self, data, prefix: str, what: str) -> dict[str, float]:
        self._one_model(what)
        if data is None:
            raise TypeError(f"Trainer.{what} needs data: (x, y) tensors or arrays, or a DataLoader")
        if is_in_memory(data):
            data = self._in_memory(data, prefix)
            self._check_inputs(data[0], prefix)
        else:
            require_iterable(data, prefix)
        loss, acc = self._evaluate(data, prefix)
        return {f"{prefix}_loss": loss[0], f"{prefix}_acc": acc[0]}

    def validate(self, data, y=None) -> dict[str, float]:
        """Mean loss and accuracy of the model on ``data`` in eval mode: ``{"val_loss", "val_acc"}``.

        ``data`` is ``(x, y)`` tensors/arrays or a loader; ``validate(x, y)`` works too.
        """
        return self._metrics((data, y) if y is not None else data, "val", "validate")

    def test(self, data, y=None) -> dict[str, float]:
        """As :meth:`validate`, named for the test split: ``{"test_loss", "test_acc"}``."""
        return self._metrics((data, y) if y is not None else data, "test", "test")

    @torch.no_grad()
    def predict(self, data, batch_size: int | None = None) -> torch.Tensor:
        """The model's outputs (logits) for ``data`` in eval mode, concatenated on the CPU; of a model that returns a
        tuple, dict or dataclass, its class scores (:func:`~trainwell.train.learners.class_scores`).

        Args:
            data: inputs (a tensor or NumPy array, run in chunks of ``batch_size`` rows; by default
                :func:`~trainwell.train.learners.eval_rows` of the model's device), or a loader of batches
                (inputs alone, ``(x, y)`` pairs or dicts: the targets are ignored).

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from trainwell.train import Trainer
            >>> model = nn.Linear(2, 3)
            >>> t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=4)
            >>> t.predict(torch.zeros(5, 2)).shape
            torch.Size([5, 3])
        """
        self._one_model("predict")
        if is_array(data) or is_in_memory(data):
            x = as_tensor(data if is_array(data) else inputs_of(data, "predict", self.batch_keys), "predict inputs")
            rows = batch_size or eval_rows(self.device)
            batches: Iterable = (x[i : i + rows] for i in range(0, len(x), rows))
        else:
            require_iterable(data, "predict")
            batches = data
        model = self.learner.model
        modes = module_modes(model)
        model.eval()
        try:
            outs = []
            for b in batches:
                # a TensorDataset of inputs alone yields [xb]
                xb = b if is_array(b) else b[0] if isinstance(b, (list, tuple)) and len(b) == 1 else \
                    inputs_of(b, "predict", self.batch_keys)
                xb = as_tensor(xb, "predict inputs").to(self.device)
                self._check_inputs(xb, "predict")
                with self.learner.autocast():
                    try:
                        out = model(xb)
                    except FORWARD_ERRORS as e:
                        self._explain(e, xb, "predict", b)
                        raise
                    outs.append(class_scores(out).cpu())  # a tuple/dict output: its class scores
        finally:
            restore_modes(modes)
        return torch.cat(outs) if outs else torch.empty(0)

