"""Post-flight diagnosis: read the loss curve, split the error into bias and variance, measure overfitting.

Learning rate from the loss curve (cs231n, "babysitting the learning process"): a very high rate makes the loss
rise or become NaN; a high one drops fast and then plateaus at a worse value; a good one decreases steadily; a
low one decreases slowly and nearly linearly. The curve's noise reflects the batch size.

Bias/variance (Ng, "Machine Learning Yearning"): avoidable bias = training error - human-level error; variance =
validation error - training error; fix the larger one first.
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def loss_curve_features(losses: list[float]) -> dict:
    """Numbers the diagnosis uses: smoothed start/end, the share of the total drop reached by mid-run, the share
    made in the second half, and the noise (std of loss - smoothed loss, relative to the loss level)."""
    n = len(losses)
    w = max(1, n // 20)
    s = _smooth(losses, w)
    start = sum(losses[:w]) / w
    end = s[-1]
    mid = s[n // 2]
    drop = start - end
    half_share = (start - mid) / drop if drop > 0 else 0.0
    quarter = s[(3 * n) // 4]
    last_quarter_share = (quarter - end) / drop if drop > 0 else 0.0
    late = [losses[i] - s[i] for i in range(n // 2, n)]
    level = sum(s[n // 2 :]) / max(len(late), 1)
    noise_abs = (sum(v * v for v in late) / max(len(late), 1)) ** 0.5
    noise = noise_abs / max(abs(level), 1e-12)
    swing = noise_abs / max(drop, 1e-12)  # step-to-step noise relative to how far the loss came down
    return {"first": losses[0], "peak": max(losses), "start": start, "end": end,
            "rel_drop": drop / max(abs(start), 1e-12), "half_share": half_share,
            "last_quarter_share": last_quarter_share, "noise": noise, "swing": swing, "steps": n}


def learning_rate_diagnosis(losses: list[float], batch_size: int | None = None) -> Verdict:
    """Classify a per-step training-loss curve as too high / high / good / too low."""
    if len(losses) < 10:
        return Verdict("learning rate (loss curve)", "pass", f"{len(losses)} steps", ">= 10 steps",
                       "too few steps to read the curve")
    noise_note = f"; batch size {batch_size}" if batch_size else ""
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        return Verdict("learning rate (loss curve)", "fail", f"too high: loss became {losses[bad[0]]} at step "
                       f"{bad[0]}", "a steady decrease", "lower the learning rate (by 3-10x)")
    f = loss_curve_features(losses)
    value = (f"start {f['start']:.3g} -> end {f['end']:.3g} ({f['rel_drop']:.0%} drop, {f['half_share']:.0%} of it "
             f"by mid-run); noise {f['noise']:.0%} of the loss level{noise_note}")
    if f["end"] > f["first"] or f["peak"] > 10 * f["first"]:
        what = "the loss rose" if f["end"] > f["first"] else f"the loss spiked to {f['peak']:.3g}"
        return Verdict("learning rate (loss curve)", "fail", f"too high: {what}; " + value, "a steady decrease",
                       "lower the learning rate (by 3-10x)")
    first_drop = (f["first"] - f["end"]) / max(abs(f["first"]), 1e-12)
    if f["half_share"] > 0.97 and first_drop > 0.2 and f["end"] > 0.3 * f["first"]:
        return Verdict("learning rate (loss curve)", "warn", "high: fast drop, then a plateau; " + value,
                       "a steady decrease to a low value", "lower the learning rate, or decay it on the plateau")
    if f["swing"] > 0.25:
        return Verdict("learning rate (loss curve)", "warn", "too high: the loss oscillates; " + value,
                       "a steady decrease", "lower the learning rate or enlarge the batch")
    if f["half_share"] < 0.65 or (f["rel_drop"] < 0.5 and f["last_quarter_share"] > 0.05):
        return Verdict("learning rate (loss curve)", "warn", "too low: slow, near-linear decrease; " + value,
                       "most of the drop early, then a slowing decrease", "raise the learning rate (by 3-10x)")
    return Verdict("learning rate (loss curve)", "pass", "good: steady decrease; " + value, "a steady decrease")


def bias_variance(train_error: float, val_error: float, human_error: float | None = None,
                  tolerance: float = 0.02) -> Verdict:
    """Avoidable bias (train - human) vs variance (val - train), the dominant one, and the lecture's remedy."""
    human = human_error if human_error is not None else 0.0
    bias, variance = train_error - human, val_error - train_error
    value = (f"train error {train_error:.1%}, val error {val_error:.1%}, human {human:.1%}: avoidable bias "
             f"{bias:.1%}, variance {variance:.1%}")
    if max(bias, variance) <= tolerance:
        return Verdict("bias/variance", "pass", value, f"both <= {tolerance:.0%}", "")
    if human_error is not None and val_error <= human_error:
        return Verdict("bias/variance", "pass", "better than human-level: " + value, f"both <= {tolerance:.0%}",
                       "human-level error no longer bounds the Bayes error here; judge progress by val error")
    if bias >= variance:
        return Verdict("bias/variance", "warn", "high bias: " + value, f"both <= {tolerance:.0%}",
                       "underfitting: a bigger model, longer training, a better optimizer or architecture")
    return Verdict("bias/variance", "warn", "high variance: " + value, f"both <= {tolerance:.0%}",
                   "overfitting: more data, augmentation, regularization (weight decay, dropout), early stopping or "
                   "a smaller model")


def overfitting(history: list[dict], onset_epoch: int | None) -> Verdict:
    """The generalization gap at the end and the epoch where overfitting set in (if it did)."""
    if not history or "val_loss" not in history[-1]:
        return Verdict("overfitting", "pass", "no validation data", "-", "")
    last = history[-1]
    gap = last["val_loss"] - last["train_loss"]
    acc_gap = last["train_acc"] - last["val_acc"]
    value = f"gap: val - train loss {gap:.3g}, train - val accuracy {acc_gap:.1%}"
    if onset_epoch is None:
        return Verdict("overfitting", "pass", value + "; no onset detected", "val loss not rising while train falls")
    return Verdict("overfitting", "warn", value + f"; onset at epoch {onset_epoch}",
                   "val loss not rising while train falls",
                   "stop earlier (stop.criteria = ['early_stopping']) or regularize")
