"""The run directory: atomic writes of config, metrics, summary and checkpoints.

Every file is written to a temporary file in the same folder, flushed to disk, then renamed over the old one,
so a crash at any moment leaves either the previous complete file or the new complete file. ``metrics.jsonl``
is appended line by line; a torn last line (a crash mid-write) is ignored on reading and dropped on resume.

Layout: ``config.toml``, ``metrics.jsonl``, ``summary.json``, ``checkpoints/last.pt``, ``checkpoints/best.pt``,
``figures/*.png``, ``report.html``.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from trainwell.durability import deferred, fsync_file, fsync_folder
from trainwell.errors import TrainwellError
from trainwell.manifest import record as record_written


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename; on failure the old file is untouched. Inside
    :func:`trainwell.durability.synced_together` the syncs wait for the block's end (the file is complete at once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    later = deferred(path)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a run's files are readable like the user's others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if not later:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # e.g. ENOSPC from write/fsync: say which file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    if not later:
        fsync_folder(path.parent)
    record_written(path)  # in a run folder's manifest: --force may delete what trainwell wrote, nothing else


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    torch = sys.modules.get("torch")  # torch is imported only where checkpoints are: no tensor exists without it
    if torch is not None and isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value


def _json_line(record: Any) -> str:
    """``record`` as one line of strict JSON, as :func:`_jsonable` would make it: json's C encoder takes it as it
    is when every float is finite and nothing is a tensor (a metrics or monitor record almost always), and the
    conversion walks it only when the encoder refuses."""
    try:
        return json.dumps(record, allow_nan=False)
    except (ValueError, TypeError):
        return json.dumps(_jsonable(record), allow_nan=False)


def to_json(obj: Any) -> str:
    """JSON with non-finite floats written as null / "inf" (strict JSON has no NaN)."""
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """``torch.save`` through a temp file; a full disk or a kill leaves the previous checkpoint intact."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no code from the file runs)."""
    path = Path(path)
    if not path.exists():
        raise TrainwellError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise TrainwellError(f"{path}: not a file, so not a trainwell checkpoint")
    import torch

    try:
        with warnings.catch_warnings():  # torch's warnings about a strange pickle would be a second line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # corrupt or hostile files raise many types; all mean "cannot use this file"
        # torch's text would advise weights_only=False "if you trust the source": for a file that would run code
        raise TrainwellError(f"{path}: not a trainwell checkpoint (it would run code, or it is damaged)") from None


def require_run_config(run_dir: str | Path) -> Path:
    """The ``config.toml`` of run directory ``run_dir`` (what ``--resume`` reads), checked without torch.

    Raises:
        TrainwellError: there is none, so ``run_dir`` is not a trainwell run directory.
    """
    config = RunDir(run_dir).config
    if not Path(run_dir).exists():
        raise TrainwellError(f"{run_dir}: does not exist; --resume needs a trainwell run directory")
    if not Path(run_dir).is_dir():
        raise TrainwellError(f"{run_dir}: is a file, not a folder; --resume needs a trainwell run directory (the "
                             "folder trainwell fit wrote, e.g. runs/run-1a2b3c4d)")
    if (Path(run_dir) / "sweep.json").is_file():
        raise TrainwellError(f"{run_dir}: a sweep folder, not a fit run: continue it with `trainwell sweep --resume "
                             f"{run_dir}`")
    if not config.exists():
        raise TrainwellError(f"{config}: not found; --resume needs a trainwell run directory")
    return config


CHECKPOINT_FIELDS = {"model": dict, "optimizer": dict, "schedule": dict, "epoch": int, "step": int, "history": list}


def check_training_checkpoint(ckpt: Any, path: str | Path) -> dict:
    """Return ``ckpt`` if it has the fields and types of a trainwell training checkpoint; else a one-line error."""
    if not isinstance(ckpt, dict):
        raise TrainwellError(f"{path}: not a trainwell checkpoint (a dict of states), got a {type(ckpt).__name__}")
    for key, kind in CHECKPOINT_FIELDS.items():
        value = ckpt.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = "nothing" if key not in ckpt else type(value).__name__
            raise TrainwellError(f"{path}: field {key!r} should be a {kind.__name__}, got {got}: not a usable "
                                 f"trainwell checkpoint")
    if ckpt["epoch"] < -1 or ckpt["step"] < 0 or not all(isinstance(r, dict) for r in ckpt["history"]):
        raise TrainwellError(f"{path}: inconsistent checkpoint (epoch {ckpt['epoch']}, step {ckpt['step']}): not a "
                             f"usable trainwell checkpoint")
    return ckpt


def append_bytes(path: str | Path, data: bytes, create: bool = True, exclusive: bool = False) -> None:
    """Append ``data`` to ``path`` with one ``O_APPEND`` write (the OS has it when this returns: it survives a
    killed process). ``create=False``: a missing file raises :class:`FileNotFoundError` instead of being created;
    ``exclusive=True``: the file must not exist yet (else :class:`FileExistsError`, and nothing is written).
    One open, write and close, without Python's buffered file objects: a run appends a line every epoch, and for a
    small model an epoch is a millisecond."""
    flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0) | (os.O_CREAT | os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        if exc.filename is None:  # e.g. ENOSPC: say which file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    finally:
        os.close(fd)


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON line and hand it to the OS (it survives a killed process; :func:`sync_file` makes it
    survive a power cut, and the checkpoint does that before every save)."""
    append_bytes(path, (_json_line(record) + "\n").encode("utf-8"))
    record_written(path)


def sync_file(path: str | Path) -> None:
    """fsync an existing file so that everything written to it so far is on disk (inside
    :func:`trainwell.durability.synced_together`: at the block's end)."""
    if deferred(path):
        return
    try:
        fsync_file(path)
    except FileNotFoundError:
        return


def read_jsonl(path: str | Path) -> list[dict]:
    """Read complete JSON lines; a torn final line (a crash mid-append) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):  # anything else is not a record trainwell wrote
            records.append(record)
    return records


class RunDir:
    """Paths and writers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.toml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last = property(lambda self: self.path / "checkpoints" / "last.pt")
    best = property(lambda self: self.path / "checkpoints" / "best.pt")
    figures = property(lambda self: self.path / "figures")
    report = property(lambda self: self.path / "report.html")

    def create(self) -> RunDir:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        return self

    def write_empty(self, name: str) -> Path:
        """Create (or empty) the log ``name`` in the run folder, recorded as trainwell's."""
        path = self.path / name
        path.write_text("", encoding="utf-8")
        record_written(path)
        return path

    def read_summary(self) -> dict:
        try:
            summary = json.loads(self.summary.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrainwellError(f"{self.summary}: no summary.json (is this a finished trainwell run?)") from None
        except (json.JSONDecodeError, OSError) as exc:
            raise TrainwellError(f"{self.summary}: unreadable ({exc})") from None
        if not isinstance(summary, dict):
            raise TrainwellError(f"{self.summary}: not a trainwell summary (a JSON object), got a "
                                 f"{type(summary).__name__}")
        return summary

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temp files a killed process left mid-write (``.<name>.*.tmp``); return what was removed."""
        stale = [p for folder in (self.path, self.checkpoints) if folder.is_dir() for p in folder.glob(".*.tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def truncate_metrics(self, last_epoch: int, history: list[dict] | None = None) -> None:
        """Keep only metric records up to ``last_epoch`` (rewritten atomically): used when resuming. If records
        are missing (the file was deleted or cut), they are rebuilt from ``history``, the checkpoint's copy."""
        keep = [r for r in read_jsonl(self.metrics) if r.get("epoch", -1) <= last_epoch]
        if history is not None and [r.get("epoch") for r in keep] != [r.get("epoch") for r in history]:
            keep = list(history)
        atomic_write_text(self.metrics, "".join(_json_line(r) + "\n" for r in keep))
