"""The order a report is read in: the cause first, its consequences after, each finding once, numbers short.

A report lists its verdicts in the order the checks ran; a reader wants the other way round: what to fix first.
So the rendered report puts

1. problems before facts: fail, then warn, then info, then pass, then skip (a check that could not look);
2. within one status, the loop's named causes (``loop: ...``) first, then the pre-flight's checks, then the loss
   curve's learning-rate reading, then the network's monitors (dead units, non-finite values: what a cause did to
   the network), then the run's general readings (overfitting, bias/variance);
3. a verdict that another one names as its cause (``fix 'X' first``, ``explained by 'X'``, ``follow 'X' first``)
   before the verdict that names it, whatever their kinds;

and a finding read in several places (dead ReLUs in two layers, NaN in five) is one row. The verdicts themselves and
their JSON are left in the order the checks ran: this is how they are shown, not what they are.

Example:
    >>> from trainwell.doctor.verdict import Verdict
    >>> vs = [Verdict("monitor: dead ReLUs", "warn", "fc1"), Verdict("loop: labels", "warn", "sorted")]
    >>> [vs[i].check for i in reading_order(vs, ["monitor", "monitor"])]
    ['loop: labels', 'monitor: dead ReLUs']
"""

from __future__ import annotations

import re

from trainwell.doctor.verdict import Verdict

SEVERITY = {"fail": 0, "warn": 1, "info": 2, "pass": 3, "skip": 4}
PROBLEMS = ("fail", "warn")
GENERAL = ("overfitting", "bias/variance")
"""Readings of the whole run that every cause ends up in: read last among verdicts of one status."""

_NAMED = re.compile(r"(?:fix|follow|explained by) ((?:'[^']+'(?:, | and )?)+)")
_EXPLAINED = re.compile(r" \(explained by (?:'[^']+'(?:, | and )?)+\)$")  # a check's name may hold "(...)"
_QUOTED = re.compile(r"'([^']+)'")
_DECIMAL = re.compile(r"(?<![\d.])(\d+\.\d+)(e[-+]?\d+)?(?![\d.])")
DIGITS = 4
"""Significant digits a number is shown with."""
MOST_SHOWN = 3
"""Rows of one finding shown in full before the rest are counted."""


def kind(check: str, phase: str = "") -> int:
    """How directly a verdict names a cause in the user's code: 0 a loop cause, 1 a pre-flight check, 2 the loss
    curve's rate, 3 a monitor's reading of the network, 4 a general reading of the run."""
    if check.startswith("loop:"):
        return 0
    if check.startswith("monitor"):
        return 3
    if check.startswith(GENERAL):
        return 4
    if check.startswith("learning rate"):
        return 2
    return {"monitor": 3, "post": 4}.get(phase, 1)


def causes_named(v: Verdict) -> list[str]:
    """The checks ``v`` says to fix first or says it is explained by (in its value or its advice)."""
    text = f"{v.value} {v.advice or ''}"
    return [name for group in _NAMED.findall(text) for name in _QUOTED.findall(group) if name != v.check]


def reading_order(verdicts: list[Verdict], phases: list[str]) -> list[int]:
    """The indexes of ``verdicts`` in the order to read them (see the module's docstring)."""
    ranked = sorted(range(len(verdicts)),
                    key=lambda i: (SEVERITY[verdicts[i].status], kind(verdicts[i].check, phases[i]), i))
    by_name: dict[str, list[int]] = {}
    for i in ranked:
        by_name.setdefault(verdicts[i].check, []).append(i)
    order: list[int] = []
    placed: set[int] = set()

    def place(i: int, path: tuple[int, ...] = ()) -> None:
        if i in placed or i in path:  # a loop of "fix each other first" keeps the ranked order
            return
        for name in causes_named(verdicts[i]):
            for j in by_name.get(name, []):
                if verdicts[j].status in PROBLEMS:  # a named cause that is itself a problem is read first
                    place(j, path + (i,))
        placed.add(i)
        order.append(i)

    for i in ranked:
        place(i)
    return order


def short_numbers(text: str) -> str:
    """``text`` with every decimal number longer than four significant digits rounded to four (``1.38629`` ->
    ``1.386``, ``0.000123456`` -> ``0.0001235``); integers (steps, rows) are left whole."""
    def short(m: re.Match) -> str:
        digits = m.group(1).replace(".", "").lstrip("0")
        return m.group(0) if len(digits) <= DIGITS else f"{float(m.group(0)):.{DIGITS}g}"

    return _DECIMAL.sub(short, text)


def shown(value: object) -> str:
    """A verdict's value or expectation as a reader sees it: floats to four significant digits, "-" as nothing."""
    if value is None or value == "-":
        return ""
    if isinstance(value, float):
        return f"{value:.{DIGITS}g}"
    return short_numbers(str(value))


def merged(rows: list[tuple[Verdict, str]]) -> list[tuple[Verdict, str]]:
    """``rows`` with the verdicts of one check and status joined into one (a monitor's reading of several layers):
    the first :data:`MOST_SHOWN` values in full, the rest counted; the advice of the first, plus any other advice."""
    groups: dict[tuple[str, str], list[tuple[Verdict, str]]] = {}
    for v, phase in rows:
        groups.setdefault((v.check, v.status), []).append((v, phase))
    out = []
    for v, phase in rows:
        group = groups.pop((v.check, v.status), None)
        if group is None:
            continue
        if len(group) == 1:
            out.append((v, phase))
            continue
        values = [shown(g.value) for g, _ in group]
        why = _EXPLAINED.search(values[0])  # "(explained by 'X')" said once for the row, not once per reading
        suffix = why.group(0) if why and all(value.endswith(why.group(0)) for value in values) else ""
        values = [value[: len(value) - len(suffix)] for value in values]
        more = len(values) - MOST_SHOWN
        value = "; ".join(values[:MOST_SHOWN]) + (f"; and {more} more like these" if more > 0 else "") + suffix
        advice = "; ".join(dict.fromkeys(g.advice for g, _ in group if g.advice))
        out.append((Verdict(v.check, v.status, value, v.expected, advice), phase))
    return out


def findings(verdicts: list[Verdict], status: str) -> int:
    """How many rows of ``status`` the rendered report has: one per check (see :func:`merged`)."""
    return len({v.check for v in verdicts if v.status == status})


def likely_cause(verdicts: list[Verdict], phases: list[str]) -> Verdict | None:
    """The verdict to read first when the report found a problem (a fail or a warn), else None."""
    order = reading_order(verdicts, phases)
    first = verdicts[order[0]] if order else None
    return first if first is not None and first.status in PROBLEMS else None
