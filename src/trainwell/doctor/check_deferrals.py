"""How the pre-flight's verdicts name their causes: a failed or warned check that another check's fail explains
(inputs far off unit scale, an inverted mask or ``pos_weight``, vanishing signals, large initial scores, identical
units, a loss with no lower bound, most units dropped) gets advice that names that cause first, as cs231n's
"babysitting the learning process" orders its checks: fix what comes first, then read what follows."""

from __future__ import annotations

#: the pre-flight fails that a loss over the wrong axis explains (nothing can be fitted through it)
AXIS_BOUND = ("overfit a tiny subset", "input-independent baseline")
#: checks whose failure inputs far below unit scale explain (the first layer passes on little more than its bias)
SCALE_BOUND = ("overfit a tiny subset", "variance propagation", "input-independent baseline", "dead units")


def defer_to_input_scale(verdicts: list, inputs_off) -> list:
    """A first layer fed far too small (or far too large) a signal fits slowly and passes it on: the failed or
    warned :data:`SCALE_BOUND` checks name the ``input scale`` warning first, unless they already name a cause
    (an initial loss off for the same inputs)."""
    if inputs_off is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{inputs_off.check}' first: {inputs_off.advice}")
            if v.check in SCALE_BOUND and v.status in ("fail", "warn") and "first:" not in (v.advice or "") else v
            for v in verdicts]


def defer_to_weights(verdicts: list, weighted) -> list:
    """Positives that weigh almost nothing on the rare labels (an inverted ``pos_weight``) are fitted last: a
    failed overfit names the weights first."""
    if weighted is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{weighted.check}' first: the rare labels' "
                    f"positives weigh almost nothing") if v.check == "overfit a tiny subset" and
            v.status in ("fail", "warn") and "first:" not in (v.advice or "") else v for v in verdicts]


def defer_to_inverted_mask(verdicts: list, inverted) -> list:
    """Attention that reads only the padding (an inverted key padding mask) leaves the held-out examples nothing
    of their tokens to read: a failed or warned overfit or baseline names the mask first."""
    if inverted is None or inverted.status != "fail":
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{inverted.check}' first: attention reads only the "
                    "padding") if v.check in AXIS_BOUND and v.status in ("fail", "warn") and
            "first:" not in (v.advice or "") else v for v in verdicts]


def defer_to_vanishing(verdicts: list) -> list:
    """A failed overfit or baseline follows from signals that vanish through depth (an init too small for the
    network's depth: the deep layers pass on almost nothing), when the inputs are not the cause: its advice
    names the variance-propagation fail and its init; identical units (the symmetry fail) are the more direct cause
    where nothing passes through the depth at all (every weight 0: :func:`defer_to_symmetry`)."""
    vanish = next((v for v in verdicts if v.check == "variance propagation" and v.status == "fail" and
                   "vanish" in (v.advice or "")), None)
    if vanish is None or any(v.check == "input scale" for v in verdicts) or _zero_through_symmetry(verdicts):
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{vanish.check}' first: {vanish.advice}")
            if v.check in AXIS_BOUND and v.status == "fail" and "first:" not in (v.advice or "") else v
            for v in verdicts]


def defer_to_large_scores(verdicts: list) -> list:
    """An initial loss far above the uninformative one because a layer's init makes the scores large (not the
    inputs' scale, named before it): the trained copy starts overconfident and stays so on held-out examples, so a
    failed or warned baseline names that fail first, not the labels or memorization."""
    initial = next((v for v in verdicts if v.check == "initial loss" and v.status == "fail" and
                    "scales the signal std by" in (v.advice or "")), None)
    if initial is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{initial.check}' first: {initial.advice}")
            if v.check == "input-independent baseline" and v.status in ("fail", "warn") and
            "first:" not in (v.advice or "") else v for v in verdicts]


def defer_to_symmetry(verdicts: list) -> list:
    """Hidden units initialized identically (every weight 0, or one constant) get identical gradients and stay
    identical: a layer acts as one unit, or, at 0 before a ReLU, as none. A failed or warned overfit, baseline or
    dead-unit check names the symmetry fail first, not capacity, labels or biases; so does a variance propagation
    that reads no signal at either end (all-zero weights pass on nothing), and a penalty that does not grow with its
    strength because it is 0 at both (it reads only zero weights)."""
    symmetric = next((v for v in verdicts if v.check == "symmetry" and v.status == "fail"), None)
    if symmetric is None:
        return verdicts
    follows = ("overfit a tiny subset", "input-independent baseline", "dead units") + \
        (("variance propagation",) if _zero_through_symmetry(verdicts) else ())
    verdicts = [type(v)(v.check, v.status, v.value, v.expected, f"fix '{symmetric.check}' first: every weight is "
                        "0, so a penalty on them is 0 at any strength; initialize the weights randomly")
                if v.check == "regularization raises loss" and v.status == "warn" and
                "the penalty is 0 at both strengths" in str(v.value) else v for v in verdicts]
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{symmetric.check}' first: identical units get "
                    "identical gradients and stay identical; initialize the weights randomly")
            if v.check in follows and v.status in ("fail", "warn") and "first:" not in (v.advice or "") else v
            for v in verdicts]


def _zero_through_symmetry(verdicts: list) -> bool:
    """A symmetry fail beside a variance propagation that reads an activation std of 0 at both ends ("(both 0)"):
    the weights are all 0, so the units are identical and pass nothing; the init to fix is the symmetry's."""
    return any(v.check == "symmetry" and v.status == "fail" for v in verdicts) and any(
        v.check == "variance propagation" and v.status == "fail" and "std 0 -> 0 (both 0)" in str(v.value)
        for v in verdicts)


def defer_to_unbounded(verdicts: list) -> list:
    """A loss with no lower bound (the overfit drove it towards -inf: a Dice on raw scores, a term with the wrong
    sign) lets one output for every input reach any loss: the baseline's failure follows from it, not from a
    margin of 0 or the data."""
    if not any(v.check == "overfit a tiny subset" and str(v.value).startswith("the loss falls without bound")
               for v in verdicts):
        return verdicts
    # a baseline skipped for a loss without a lower bound (a policy gradient's, by design) fails where the overfit
    # shows the model's own loss falling without bound too: then it is the bug
    return [type(v)(v.check, "fail" if v.status == "skip" else v.status, str(v.value).removeprefix("skipped: "),
                    v.expected, "fix 'overfit a tiny subset' first: the loss falls without bound, so an output that "
                    "ignores its input drives it lower than any fit")
            if v.check == "input-independent baseline" and (v.status in ("fail", "warn") or v.status == "skip" and
                                                            "no lower bound" in str(v.value)) else v
            for v in verdicts]


def with_dropout_rate(verdicts: list, rate) -> list:
    """The dropout-rate verdict beside the others; an overfit that failed with most units dropped follows from it
    (the verdict is then a fail)."""
    if rate is None:
        return verdicts
    overfit = next((v for v in verdicts if v.check == "overfit a tiny subset" and v.status == "fail"), None)
    if overfit is not None:
        rate = type(rate)(rate.check, "fail", rate.value, rate.expected, rate.advice)
        verdicts = [type(v)(v.check, v.status, v.value, v.expected, f"fix '{rate.check}' first: the model trains "
                            f"through the few units its dropout keeps") if v is overfit else v for v in verdicts]
    return [rate, *verdicts]
