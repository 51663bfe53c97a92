"""``loop: validation labels`` as information: a validation set whose class frequencies differ from the training
set's, its labels encoded as the training's.

A later period, another site, or a validation set balanced on purpose holds the classes in other shares than the
training set (a prior shift, Saerens et al. 2002). The labels mean the same classes: the model's predictions agree
with them as given, far above chance, where labels encoded apart (another encoder's numbers:
:mod:`~trainwell.doctor.relabelled_validation`) or drawn apart from their inputs
(:mod:`~trainwell.doctor.unrelated_validation`) agree with a renumbering or with chance. Its validation loss is
raised by the shift alone (the model's prior is the training set's) and may not fall below its first value while the
training loss does: the overfitting reading that says "fits nothing that carries over, check the labels' encoding"
is then explained by the shift, which the validation's agreement shows does carry over.

Example:
    >>> import torch
    >>> confusion = torch.tensor([[50, 8, 2], [4, 24, 2], [1, 1, 8]])  # 60/30/10 validation, 80% right
    >>> v = class_shift(torch.tensor([200, 200, 200]), confusion)
    >>> v.status, v.value[:59]
    ('info', "the validation's class shares differ from the training's by")
"""

from __future__ import annotations

import torch

from trainwell.doctor.relabelled_validation import LEAST, NAME
from trainwell.doctor.unrelated_validation import MARGIN, agreement
from trainwell.doctor.verdict import Verdict

#: the total variation between the training's and the validation's class shares from which the shift is named
SHIFT = 0.1
#: how the verdict begins (an overfitting reading that it explains names it)
SHIFTED = "the validation's class shares differ from the training's"


def class_shift(train_counts: torch.Tensor | None, counts: torch.Tensor | None) -> Verdict | None:
    """The information on a class-frequency shift: the training labels' counts per class (``train_counts``) and
    the last validation's confusion ``counts`` (targets x predictions) differ by :data:`SHIFT` or more in total
    variation, while the predictions agree with the validation labels as given more than :data:`MARGIN` above
    chance (the labels are encoded as the training's); None otherwise, or with under
    :data:`~trainwell.doctor.relabelled_validation.LEAST` validation examples."""
    if train_counts is None or counts is None:
        return None
    train_counts = train_counts[: len(counts)]  # the scored classes: an ignored label id (255) is none of them
    if float(train_counts.sum()) <= 0:
        return None
    given, chance, total = agreement(counts)
    if total < LEAST or given <= chance + MARGIN:
        return None
    classes = len(counts)
    train = torch.zeros(classes, dtype=torch.float64)
    train[: len(train_counts)] = train_counts.double().cpu()
    val = counts.detach().double().cpu().sum(1)
    train, val = train / train.sum(), val / val.sum()
    shift = 0.5 * float((train - val).abs().sum())
    if shift < SHIFT:
        return None
    order = torch.argsort((train - val).abs(), descending=True)[:5].tolist()
    shares = ", ".join(f"class {c}: {val[c]:.0%} vs {train[c]:.0%}" for c in order)
    return Verdict(NAME, "info", f"{SHIFTED} by {shift:.0%} (total variation: half the summed differences of "
                   f"the shares; validation vs training: {shares}"
                   f"{' and more' if classes > 5 else ''}); the predictions agree with {given:.0%} of the "
                   f"validation labels as given (chance {chance:.0%}): the labels are encoded as the training's, the "
                   "classes' frequencies shifted", "validation labels encoded as the training's",
                   "nothing to fix where the shift is meant (a later period, another site); the validation loss "
                   "carries the shift (the model's prior is the training set's): compare per-class accuracy, or "
                   "correct the prior at evaluation (add log(p_val / p_train) to the scores)")


def explained_by_shift(verdicts: list[Verdict]) -> list[Verdict]:
    """``verdicts`` with an overfitting warning that validation never improved made 'info', explained by a
    class-frequency shift (:func:`class_shift`) among them: the validation agrees with its labels far above
    chance, so what the model fitted does carry over."""
    shift = next((v for v in verdicts if v.check == NAME and str(v.value).startswith(SHIFTED)), None)
    if shift is None:
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{NAME}': {SHIFTED})", v.expected,
                    "the validation's class frequencies differ from the training's, and its predictions agree with "
                    "its labels far above chance: the validation loss carries the shift; judge by per-class "
                    "accuracy, and stop early if it falls")
            if v.check == "overfitting" and v.status == "warn" and "validation never improved" in str(v.value) else v
            for v in verdicts]
