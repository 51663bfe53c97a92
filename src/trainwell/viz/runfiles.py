"""Read a run folder's files for its report, checking every field the page and the plots use.

A run folder may be edited by hand, damaged, or written by someone else. Every field the report reads is checked
against what trainwell writes; a wrong one is a one-line :class:`~trainwell.errors.TrainwellError` that names the
file, the record, the field, what it holds and what is allowed, never a traceback from the plots. Non-finite
numbers, which trainwell writes as ``null``, ``"inf"`` or ``"-inf"`` (strict JSON has no NaN), are read back as
floats.

Example:
    >>> history_records([{"epoch": 0, "step": 5, "train_loss": "inf"}], "metrics.jsonl")[0]["train_loss"]
    inf
    >>> history_records([{"epoch": "0"}], "metrics.jsonl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    trainwell.errors.TrainwellError: metrics.jsonl: record 1: field 'epoch' is '0' (a str), not an integer >= 0...
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from trainwell.errors import TrainwellError

METRIC_FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time", "reg_loss")
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
DAMAGED = "not written by trainwell, or damaged"


def _fail(source, where: str, field: str, value, allowed: str):
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise TrainwellError(f"{source}: {where}field {field!r} is {shown} (a {type(value).__name__}), not {allowed}: "
                         f"the file is {DAMAGED}")


def read_json(path: Path, default=None):
    """The JSON file at ``path``, or ``default`` where there is none (a run that has not written it yet). A file that
    is there but is not JSON is an error naming it: trainwell writes each one whole (atomically), so it was edited or
    damaged, and a page that read it as missing would tell a finished run it was interrupted."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TrainwellError(f"{path}: not JSON text (not UTF-8): the file is {DAMAGED}") from None
    except ValueError as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise TrainwellError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)}{where}): the file is "
                             f"{DAMAGED}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(value, source, where: str, field: str, optional: bool = True):
    """``value`` as a float (``None`` kept when ``optional``); ``"inf"``/``"-inf"``/``"nan"`` are numbers."""
    if value is None and optional:
        return None
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return _fail(source, where, field, value, "a number")


def count(value, source, where: str, field: str, optional: bool = True):
    """``value`` if it is an integer >= 0 (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if _is_int(value) and value >= 0:
        return value
    return _fail(source, where, field, value, "an integer >= 0")


def history_records(records: list[dict], source) -> list[dict]:
    """metrics.jsonl's records, checked: ``epoch`` an integer >= 0, ``step`` too (when present), every known
    metric a number; other numeric fields (stopping-criterion values) are charted, other values ignored."""
    out = []
    for i, r in enumerate(records, 1):
        where = f"record {i}: "
        rec = dict(r)
        count(r.get("epoch"), source, where, "epoch", optional=False)
        count(r.get("step"), source, where, "step")
        for key in METRIC_FIELDS:
            if key in r:
                rec[key] = number(r[key], source, where, key)
        out.append(rec)
    return out


def summary_fields(summary: dict, source) -> dict:
    """summary.json's fields that the report shows, checked (missing ones stay missing)."""
    for key in ("epochs", "steps", "params", "best_epoch"):
        if key in summary:
            count(summary[key], source, "", key)
    for key in ("wall_s", "fit_s", "preflight_s"):
        if key in summary:
            number(summary[key], source, "", key)
    if "failed" in summary and not isinstance(summary["failed"], bool):
        _fail(source, "", "failed", summary["failed"], "true or false")
    final = summary.get("final")
    if final is not None:
        if not isinstance(final, dict):
            _fail(source, "", "final", final, "an object of final metrics")
        summary = {**summary, "final": {k: number(v, source, "final: ", k) for k, v in final.items()}}
    for key in ("doctor", "verdict"):
        value = summary.get(key)
        if value is not None and not isinstance(value, list if key == "doctor" else dict):
            _fail(source, "", key, value, "a list of verdicts" if key == "doctor" else "an object")
    if not all(isinstance(v, dict) for v in summary.get("doctor") or []):
        _fail(source, "", "doctor", summary["doctor"], "a list of verdict objects")
    return summary


def verdict_list(value, source) -> list[dict]:
    """preflight.json: a list of verdict objects."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        _fail(source, "", "(top level)", value, "a list of verdict objects")
    return value


def model_rows(value, source) -> list[dict]:
    """model.json: one object per layer with name, kind, output_shape, params, receptive_field, mult_adds."""
    if not isinstance(value, list):
        _fail(source, "", "(top level)", value, "a list of layers")
    for i, r in enumerate(value, 1):
        where = f"layer {i}: "
        if not isinstance(r, dict):
            _fail(source, where, "(layer)", r, "an object")
        for key in ("output_shape", "receptive_field"):
            shape = r.get(key)
            if not isinstance(shape, list) or not all(_is_int(v) for v in shape):
                _fail(source, where, key, shape, "a list of integers")
        for key in ("params", "mult_adds"):
            count(r.get(key), source, where, key, optional=False)
    return value


def monitor_records(records: list[dict], source) -> list[dict]:
    """monitors.jsonl: ``step`` (and ``epoch``) integers >= 0, ``activations`` an object of per-layer objects."""
    for i, r in enumerate(records, 1):
        where = f"record {i}: "
        acts = r.get("activations")
        if acts is None:
            continue
        count(r.get("step"), source, where, "step", optional=False)
        count(r.get("epoch"), source, where, "epoch")
        if not isinstance(acts, dict) or not all(isinstance(v, dict) for v in acts.values()):
            _fail(source, where, "activations", acts, "an object of per-layer objects")
    return records


def step_records(records: list[dict], source) -> list[dict]:
    """steps.jsonl: ``epoch`` and ``first_step`` integers >= 0, ``losses`` a list of numbers."""
    for i, r in enumerate(records, 1):
        where = f"record {i}: "
        count(r.get("epoch"), source, where, "epoch", optional=False)
        count(r.get("first_step", 0), source, where, "first_step", optional=False)
        losses = r.get("losses")
        if not isinstance(losses, list):
            _fail(source, where, "losses", losses, "a list of numbers")
        r["losses"] = [number(v, source, where, "losses") for v in losses]
    return records


RESULT_NUMBERS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "density")
RESULT_COUNTS = ("stop_epoch", "early_stop_step", "epochs", "round", "steps", "member")


def result_rows(rows, source) -> list[dict]:
    """results.json of a sweep or prune folder: a list of objects whose metrics are numbers, whose epochs, steps
    and rounds are integers >= 0, ``failed`` true or false, ``run_dir`` and ``kind`` strings (grid settings are
    shown as they are)."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        _fail(source, "", "(top level)", rows, "a list of result objects")
    out = []
    for i, r in enumerate(rows, 1):
        where = f"row {i}: "
        row = dict(r)
        for key in RESULT_NUMBERS:
            if key in r:
                row[key] = number(r[key], source, where, key)
        for key in RESULT_COUNTS:
            if key in r:
                count(r[key], source, where, key)
        if "failed" in r and r["failed"] is not None and not isinstance(r["failed"], bool):
            _fail(source, where, "failed", r["failed"], "true or false")
        for key in ("run_dir", "kind"):
            if r.get(key) is not None and not isinstance(r[key], str):
                _fail(source, where, key, r[key], "a string")
        out.append(row)
    return out
