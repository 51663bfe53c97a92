"""Loggers for the tools users already have: a CSV file for spreadsheets and TensorBoard event files.

:class:`CSVLogger` rewrites ``metrics.csv`` (one row per epoch, one column per metric, epochs 1-based) after each
epoch, atomically. :class:`TensorBoardLogger` writes, with ``torch.utils.tensorboard``: every step's training
loss and learning rate, every epoch's scalars (losses, accuracies, learning rate, penalty, stopping-criterion
values), histograms of the weights every ``every`` steps and of the activations and back-propagated gradients at
the doctor monitor's cadence, the first layer's filters as images (at the start and the end), the doctor's
verdicts as text (the pre-flight at step 0, the others at the last step), and the run's hyperparameters with its
final metrics for TensorBoard's HParams view (:meth:`TensorBoardLogger.log_hparams`). TensorBoard is an optional
extra: ``pip install 'trainwell[tensorboard]'``.

Example:
    >>> from trainwell.train.loggers import CSVLogger, TensorBoardLogger
    >>> callbacks = [CSVLogger("run/metrics.csv"), TensorBoardLogger("run/tensorboard", every=50)]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from trainwell.train.callbacks import Callback, State

INSTALL_HINT = "pip install 'trainwell[tensorboard]'"


class CSVLogger(Callback):
    """Keep ``path`` (metrics.csv) equal to the run's history after every epoch: a header of every metric seen,
    one row per epoch (``epoch`` counted from 1), empty cells for metrics an epoch did not log.

    Each epoch appends its row; the file is rewritten whole (atomically, flushed to disk) only when a metric
    appears that the header lacks, on the first epoch of a process (a resumed run's file may end in a torn line),
    and at the end of the fit. Rewriting and syncing the whole file every epoch made a long run's logging grow
    with the square of its epochs (a 400-epoch run of a small MLP spent most of its time there). A fresh run's
    first epoch creates the file (exclusively: an existing file is rewritten) without the atomic write's two
    syncs, as the metrics lines are appended: a population of 256 members paid 512 syncs there. An existing file
    that is not a metrics table (its header does not start with ``epoch``) is never overwritten: the first epoch
    raises ``FileExistsError``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seen: set[str] = set()  # the header's metrics
        self._history: list[dict] | None = None  # the history list the file was last written from (None: not yet)
        self._row = io.StringIO()  # one row's text, formatted by a writer made once per header
        self._writer: csv.DictWriter | None = None

    def on_epoch_end(self, state: State) -> None:
        from trainwell.rundir import append_bytes

        history = state.history
        if self._history is None:
            self._refuse_foreign_file()
            self.path.parent.mkdir(parents=True, exist_ok=True)  # CSVLogger("runs/a/metrics.csv"), as Checkpoint
        if self._history is not history or self._new_metric(history):
            if not (len(history) == 1 and self._create(history)):
                self._rewrite(history)
            return
        self._row.seek(0)
        self._row.truncate()
        self._writer.writerow(_csv_row(history[-1]))
        try:
            append_bytes(self.path, self._row.getvalue().encode("utf-8"), create=False)
        except FileNotFoundError:  # removed during the run: written whole again, header included
            self._rewrite(history)

    def on_fit_end(self, state: State) -> None:
        self._rewrite(state.history)  # complete and on disk

    def _refuse_foreign_file(self) -> None:
        """Before the first write: a file at ``path`` that is not a metrics table (its header does not start with
        ``epoch``, as this logger's and an interrupted run's do) is someone's own file, never overwritten."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                head = f.readline()
        except (FileNotFoundError, IsADirectoryError):
            return
        if head and not head.startswith("epoch,") and head.strip() != "epoch":
            raise FileExistsError(f"CSVLogger: {self.path} exists and is not a metrics table (its first line does "
                                  f"not start with 'epoch'): it is left as it is; log to another path")

    def _new_metric(self, history: list[dict]) -> bool:
        """Whether the last two records (this epoch's, and the previous one, to which callbacks after this logger
        may have added metrics) hold a metric the header lacks: checking only those keeps a long run's logging
        linear in its epochs (earlier records are already in the file)."""
        return any(k not in self._seen for record in history[-2:] for k in record)

    def _create(self, history: list[dict]) -> bool:
        """Write a fresh run's file with its first epoch if no file is there yet; False if one is."""
        from trainwell.rundir import append_bytes, record_written

        columns = history_columns(history)
        try:
            append_bytes(self.path, history_csv(history, columns).encode("utf-8"), exclusive=True)
        except FileExistsError:
            return False
        record_written(self.path)
        self._written(history, columns)
        return True

    def _rewrite(self, history: list[dict]) -> None:
        from trainwell.rundir import atomic_write_text

        columns = history_columns(history)
        atomic_write_text(self.path, history_csv(history, columns))
        self._written(history, columns)

    def _written(self, history: list[dict], columns: list[str]) -> None:
        """The file now holds ``history`` under the header ``columns``: later rows are appended against them."""
        self._seen, self._history = set(columns), history
        self._writer = csv.DictWriter(self._row, fieldnames=columns, lineterminator="\n")


def history_columns(history: list[dict]) -> list[str]:
    """Every metric name in ``history``, in the order they first appear."""
    columns: list[str] = []
    seen: set[str] = set()
    for record in history:
        for k in record:
            if k not in seen:
                seen.add(k)
                columns.append(k)
    return columns


def _csv_row(record: dict) -> dict:
    row = {k: v for k, v in record.items() if not isinstance(v, (dict, list))}
    if isinstance(row.get("epoch"), int):
        row["epoch"] += 1
    return row


def history_csv(history: list[dict], columns: list[str] | None = None) -> str:
    """The CSV text of a list of per-epoch metric dicts (epoch shown 1-based); ``columns``: the header, if the
    caller already has :func:`history_columns` of ``history``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns if columns is not None else history_columns(history),
                            lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(_csv_row(record))
    return out.getvalue()


def filter_grid(model, max_units: int = 64, scale: int = 4, input_shape: tuple[int, ...] | None = None):
    """A (H, W) float tensor in [0, 1] of the first Linear/Conv layer's weights (input channel 0), 0.5 = zero;
    None if the model has none. Each weight is a ``scale`` x ``scale`` block of pixels. With ``input_shape``, the
    first layer is the one that first runs on such an input; without it, the first registered."""
    import torch

    from trainwell.viz.first_layer import finite_limit, first_weighted_layer

    layer = first_weighted_layer(model, input_shape)
    if layer is None:
        return None
    w = layer.weight.detach().float().cpu()[:max_units]
    w = (torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0) / (2 * finite_limit(w)) + 0.5).clamp(0, 1)
    if w.dim() == 4:  # (out, in, kh, kw): tiles of input channel 0, one pixel of padding
        tiles = w[:, 0]
        cols = min(8, len(tiles))
        rows = -(-len(tiles) // cols)
        kh, kw = tiles.shape[1:]
        grid = torch.ones(rows * (kh + 1) - 1, cols * (kw + 1) - 1)
        for i, t in enumerate(tiles):
            r, c = divmod(i, cols)
            grid[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = t
    else:  # (out, in, k) -> channel 0 (out, k); a dense layer's (out, in) as it is
        grid = w[:, 0] if w.dim() == 3 else w
    return grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def require_tensorboard():
    """Return ``torch.utils.tensorboard.SummaryWriter``, or raise ImportError saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is missing or too old
        raise ImportError(f"TensorBoard logging needs the tensorboard package: {INSTALL_HINT}") from None
    return SummaryWriter


def flat_hparams(config: dict, prefix: str = "") -> dict:
    """A nested config dict as TensorBoard hyperparameters: dotted keys (``optim.lr``), numbers, strings and
    booleans kept, lists written as text, ``None`` as the text "none"."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{name}."))
        elif value is None:
            out[name] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


SCALAR_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
               "val_acc": "accuracy/val", "lr": "lr", "reg_loss": "loss/penalty", "time": "time/epoch_s"}


class TensorBoardLogger(Callback):
    """Write TensorBoard event files to ``log_dir`` (open them with ``tensorboard --logdir LOG_DIR``).

    Args:
        log_dir: folder of the event files.
        every: steps between weight histograms (the doctor monitor's cadence; 0 = no weight histograms).
        input_shape: the model's input shape without the batch axis; with it the first layer whose filters are
            logged as an image (the figure of the report) is the one that first runs on the input, not the first
            registered (a model may declare its head before its body).

    Activation and gradient histograms come from a :class:`~trainwell.doctor.monitors.Monitor` among the
    trainer's callbacks (its snapshots, logged at their own steps). :meth:`log_verdicts` adds the doctor's
    verdicts as text; :meth:`close` flushes and closes the files.
    """

    def __init__(self, log_dir: str | Path, every: int = 50, input_shape: tuple[int, ...] | None = None):
        self.writer_class = require_tensorboard()
        self.log_dir = Path(log_dir)
        self.every = every
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._writer = None
        self._records = 0
        self._lr = None  # the rate the next step trains with
        self._steps: list = []  # (step, loss tensor, lr) since the last epoch's end, written there (no sync per step)

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self.writer_class(log_dir=str(self.log_dir))
        return self._writer

    # -- hooks ---------------------------------------------------------------------------------------------
    def on_fit_start(self, state: State) -> None:
        self._records = 0
        self.log_filters(state.model, state.step)

    def on_epoch_start(self, state: State) -> None:
        monitor = self._monitor(state)
        if monitor is not None and self._records > len(monitor.records):  # resumed from an older checkpoint
            self._records = len(monitor.records)
        self._lr, self._steps = _current_lr(state), []

    def on_batch_end(self, state: State) -> None:
        loss = state.batch_loss
        if loss is not None and getattr(loss, "numel", lambda: 1)() == 1:  # one model (a population's is a vector)
            self._steps.append((state.step, loss.detach() if hasattr(loss, "detach") else loss, self._lr))
        self._lr = _current_lr(state)  # a per-step schedule has just moved it: the next step's rate
        if self.every and state.step % self.every == 0:
            import torch

            for name, p in state.model.named_parameters():
                w = p.detach().float().cpu()
                if bool(torch.isfinite(w).all()):  # a diverged tensor has no histogram (its loss says so)
                    self.writer.add_histogram(f"weights/{name}", w, state.step)

    def on_epoch_end(self, state: State) -> None:
        w, step = self.writer, state.step
        self._log_steps()
        for key, value in state.metrics.items():
            if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                w.add_scalar(SCALAR_TAGS.get(key, f"criteria/{key}"), value, step)
        w.add_scalar("epoch", state.epoch + 1, step)
        monitor = self._monitor(state)
        if monitor is not None:
            for record in monitor.records[self._records:]:
                self.log_monitor_record(record)
            self._records = len(monitor.records)
        w.flush()

    def on_fit_end(self, state: State) -> None:
        self.log_filters(state.model, state.step)
        self.writer.flush()

    # -- pieces --------------------------------------------------------------------------------------------
    def _log_steps(self) -> None:
        """The buffered steps' training loss (``loss/train_step``) and learning rate (``lr/step``)."""
        if not self._steps:
            return
        import torch

        values = torch.stack([torch.as_tensor(v).float().reshape(()).cpu() for _, v, _ in self._steps]).tolist()
        for (step, _, lr), value in zip(self._steps, values, strict=True):
            if math.isfinite(value):
                self.writer.add_scalar("loss/train_step", value, step)
            if lr is not None:
                self.writer.add_scalar("lr/step", lr, step)
        self._steps = []

    def log_hparams(self, hparams: dict, metrics: dict) -> None:
        """The run's hyperparameters (``hparams``: a flat dict, e.g. :func:`flat_hparams` of the config) with its
        final metrics, for TensorBoard's HParams view: runs written under one ``--logdir`` (a sweep's members)
        compare side by side there. Metrics are logged as ``final/<name>`` scalars in the same event file;
        non-numeric or non-finite metrics are left out."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        finite = {f"final/{k}": float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        clean = {k: v for k, v in hparams.items() if isinstance(v, (bool, int, float, str))}
        for summary in hparams_summary(clean, finite):
            self.writer.file_writer.add_summary(summary)
        for tag, value in finite.items():
            self.writer.add_scalar(tag, value, 0)
        self.writer.flush()

    @staticmethod
    def _monitor(state: State):
        return next((cb for cb in getattr(state.trainer, "callbacks", [])
                     if isinstance(getattr(cb, "records", None), list) and hasattr(cb, "verdicts")), None)

    def log_monitor_record(self, record: dict) -> None:
        """Activation and gradient histograms (pre-binned by the monitor) and its per-layer statistics."""
        step = record["step"]
        for name, a in record.get("activations", {}).items():
            label = f"{name} ({a.get('kind', '')})"
            for key, what in (("hist", "activations"), ("grad_hist", "gradients")):
                h = a.get(key)
                if h:
                    self._raw_histogram(f"{what}/{label}", h, step)
            for stat in ("dead", "saturated", "std", "grad_std"):
                if isinstance(a.get(stat), (int, float)) and math.isfinite(a[stat]):
                    self.writer.add_scalar(f"monitor/{label}/{stat}", a[stat], step)
        for name, ratio in record.get("update_ratio", {}).items():
            if math.isfinite(ratio):
                self.writer.add_scalar(f"update_ratio/{name}", ratio, step)

    def _raw_histogram(self, tag: str, h: dict, step: int) -> None:
        counts = [float(c) for c in h["counts"]]
        n = len(counts)
        width = (h["hi"] - h["lo"]) / n
        centres = [h["lo"] + (i + 0.5) * width for i in range(n)]
        total = sum(counts)
        if total <= 0:
            return
        self.writer.add_histogram_raw(tag, min=h["lo"], max=h["hi"], num=int(total),
                                      sum=sum(c * x for c, x in zip(counts, centres, strict=True)),
                                      sum_squares=sum(c * x * x for c, x in zip(counts, centres, strict=True)),
                                      bucket_limits=[h["lo"] + (i + 1) * width for i in range(n)],
                                      bucket_counts=counts, global_step=step)

    def log_filters(self, model, step: int) -> None:
        """The first layer's weights as one grayscale image on a shared symmetric scale (mid-grey = 0): 2-D
        filters tiled 8 to a row, 1-D kernels (and dense rows) as one row of pixels per unit."""
        grid = filter_grid(model, input_shape=self.input_shape)
        if grid is not None:
            self.writer.add_image("first_layer/weights", grid, step, dataformats="HW")

    def log_verdicts(self, verdicts: list[dict], step: int = 0) -> None:
        """The doctor's verdicts as text, one markdown table per phase: the pre-flight at step 0 (it ran before
        the first step), the in-flight and post-flight readings at ``step``."""
        names = {"pre": "pre-flight", "monitor": "in-flight", "post": "post-flight"}
        for phase, title in names.items():
            group = [v for v in verdicts if v.get("phase", "pre") == phase]
            if not group:
                continue
            lines = ["| check | status | value | expected | advice |", "|---|---|---|---|---|"]
            for v in group:
                cells = [str(v.get(k) if v.get(k) is not None else "").replace("|", "/")
                         for k in ("check", "status", "value", "expected", "advice")]
                lines.append("| " + " | ".join(cells) + " |")
            self.writer.add_text(f"doctor/{title}", "\n".join(lines), 0 if phase == "pre" else step)
        self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._log_steps()
            self._writer.close()
            self._writer = None


def _current_lr(state: State) -> float | None:
    """The learning rate the next step trains with (the learner's, or the optimizer's first group's)."""
    learner = getattr(state, "learner", None)
    if learner is not None and hasattr(learner, "lrs"):
        lrs = learner.lrs()
        return float(lrs[0]) if len(lrs) == 1 else None
    groups = getattr(state.optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None
