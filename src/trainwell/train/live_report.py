"""The live report: ``report.html`` written when training starts and rewritten every few epochs, so a user can
watch a run in the browser (the page updates itself), and an interrupted run still has a current report.

Each rewrite is atomic (temp file + rename: a reload never sees half a page) and costs tens of milliseconds: the
page's charts are drawn by the browser from the data inlined into it; the PNG figures are drawn once, at the end.
The callback also writes what the page shows and no other file has: ``model.json`` (the per-layer summary),
``steps.jsonl`` (per-step training losses, one line per epoch, taken from :class:`StepLosses`) and
``started.json`` (device, parameters, versions: known before the summary). Each rewrite also writes
``report-live.js``, which the open page polls to reload itself (:func:`trainwell.viz.report.write_live_file`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from trainwell.train.callbacks import Callback, State, StepLosses


def started(state: State) -> dict:
    """What the page shows of a run before its summary exists: parameters, device and versions."""
    import torch

    import trainwell

    device = getattr(state.trainer, "device", None) or next((p.device for p in state.model.parameters()), "cpu")
    return {"params": sum(p.numel() for p in state.model.parameters()), "device": str(device),
            "trainwell_version": trainwell.__version__, "torch_version": torch.__version__,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


class LiveReport(Callback):
    """Rewrite ``<run_dir>/report.html`` at the start and every ``every`` epochs.

    Args:
        run_dir: the run directory.
        input_shape: the model's input shape without the batch axis (for the model summary).
        every: epochs between rewrites (the final report is written by the pipeline once the summary exists).
        every_seconds: and at least this many seconds between rewrites (each costs ~0.1 s; a run of a few
            seconds gets the first page and the final one only).
        model: the module model.json describes (default: the trained model; a population member passes its own
            architecture, since it trains as a view into the population).
        pages: False: write model.json and steps.jsonl only, no page during training (a population member: one
            page per member at the end).
        losses: ``losses(state) -> list`` of the run's per-step losses so far (default: the trainer's
            :class:`StepLosses`).
    """

    def __init__(self, run_dir: str | Path, input_shape: tuple[int, ...] | None = None, every: int = 2,
                 every_seconds: float = 10.0, *, model=None, pages: bool = True,
                 losses: Callable[[State], list] | None = None):
        if every < 1:
            raise ValueError(f"every = {every} is not allowed: use an integer >= 1 (epochs)")
        self.model, self.pages, self.losses = model, pages, losses
        self.run_dir = Path(run_dir)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.every, self.every_seconds = every, every_seconds
        self._seen = 0  # step losses already written
        self._last = -math.inf

    def build(self, live: bool = True) -> None:
        if not self.pages:
            return
        from trainwell.viz.report import build_fit_report

        build_fit_report(self.run_dir, live=live, figures=())
        self._last = time.monotonic()

    def on_fit_start(self, state: State) -> None:
        from trainwell.rundir import atomic_write_json, atomic_write_text
        from trainwell.viz.report import MODEL_FILE, STARTED_FILE, STEPS_FILE

        atomic_write_text(self.run_dir / STEPS_FILE, "")
        self._seen = 0
        atomic_write_json(self.run_dir / STARTED_FILE, started(state))
        if self.input_shape is not None:
            try:
                from trainwell.cnn.summary import summarize

                model = self.model if self.model is not None else state.model
                rows = [r.as_dict() for r in summarize(model, self.input_shape)]
            except Exception:  # noqa: BLE001 - a model the summary cannot trace still trains; the page says so
                rows = []
            atomic_write_json(self.run_dir / MODEL_FILE, rows)
        self.build()

    def on_epoch_start(self, state: State) -> None:
        losses = self._losses(state)  # the recorder's losses of finished epochs (restored on resume)
        self._seen = len(losses) if losses is not None else 0

    def _losses(self, state: State) -> list | None:
        if self.losses is not None:
            return self.losses(state)
        trainer = state.trainer
        recorder = next((cb for cb in getattr(trainer, "callbacks", []) if isinstance(cb, StepLosses)), None)
        return recorder.losses if recorder is not None else None

    def on_epoch_end(self, state: State) -> None:
        from trainwell.rundir import append_jsonl
        from trainwell.viz.report import STEPS_FILE

        losses = self._losses(state)
        if losses is not None:
            new = losses[self._seen:]
            append_jsonl(self.run_dir / STEPS_FILE,
                         {"epoch": state.epoch, "first_step": state.step - len(new), "losses": new})
            self._seen = len(losses)
        last = state.epoch + 1 >= getattr(state.trainer, "epochs", state.epoch + 2)
        due = (state.epoch + 1) % self.every == 0 and time.monotonic() - self._last >= self.every_seconds
        if state.stop is None and not last and due:
            self.build()

    def on_fit_end(self, state: State) -> None:
        if (state.stop or "").startswith("interrupted"):  # no summary will follow: the page says where it stopped
            self.build(live=False)
