"""A doctor report: the verdicts of one run of checks, as a rich table, JSON, or lists of failures and warnings.

Printed, a report reads from the cause down: its likely cause and what to do first, then the problems, most
severe and most direct first, one row per finding (:mod:`trainwell.doctor.report_order`), then the names of the
checks that passed.

``trainwell.doctor.check``, ``trainwell.doctor.watch(...).report()`` and the ``trainwell doctor`` command all
return or render this one object.

Example:
    >>> from trainwell.doctor.verdict import Verdict
    >>> r = Report([Verdict("initial loss", "pass", 2.30, "ln 10"), Verdict("symmetry", "fail", "x", "y", "fix")])
    >>> r.status, [v.check for v in r.failed]
    ('fail', ['symmetry'])
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from trainwell.doctor.report_order import likely_cause, merged, reading_order, short_numbers, shown
from trainwell.doctor.verdict import STATUSES, Verdict, worst

_COLORS = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim", "info": "cyan"}
#: a verdict's phase as its row says it: the pre-flight checks ran before training (on a copy of the model), the
#: monitors read the steps as they ran, the post-flight readings the whole run at its end
PHASES_SHOWN = {"pre": "before training", "monitor": "during training", "post": "after training"}


class Report:
    """An ordered list of :class:`Verdict` s, each optionally tagged with its phase (pre / monitor / post).

    Attributes:
        verdicts: the verdicts, in the order the checks ran.
        phases: one phase name per verdict ("" when untagged).
        title: a heading for the table.
    """

    def __init__(self, verdicts: list[Verdict], title: str = "trainwell doctor", phases: list[str] | None = None):
        self.verdicts = list(verdicts)
        self.phases = list(phases) if phases is not None else [""] * len(self.verdicts)
        if len(self.phases) != len(self.verdicts):
            raise ValueError(f"report: {len(self.phases)} phases for {len(self.verdicts)} verdicts: give one each")
        self.title = title

    # -- reading -------------------------------------------------------------------------------------------
    @property
    def failed(self) -> list[Verdict]:
        """The verdicts with status 'fail'."""
        return [v for v in self.verdicts if v.status == "fail"]

    @property
    def warnings(self) -> list[Verdict]:
        """The verdicts with status 'warn' (including checks that were skipped, e.g. for an unknown loss)."""
        return [v for v in self.verdicts if v.status == "warn"]

    @property
    def skipped(self) -> list[Verdict]:
        """The checks that could not look (status 'skip'); each value says why."""
        return [v for v in self.verdicts if v.status == "skip"]

    @property
    def status(self) -> str:
        """'fail' if any check failed, else 'warn' if any warned, else 'pass'."""
        return worst(self.verdicts)

    def __getitem__(self, check: str | int) -> Verdict:
        """The verdict at an index, or the first one whose check name starts with ``check``."""
        if isinstance(check, int):
            return self.verdicts[check]
        for v in self.verdicts:
            if v.check.startswith(check):
                return v
        raise KeyError(f"no check named {check!r} in this report: it has {', '.join(self.checks)}")

    @property
    def checks(self) -> list[str]:
        return [v.check for v in self.verdicts]

    def __iter__(self) -> Iterator[Verdict]:
        return iter(self.verdicts)

    def __len__(self) -> int:
        return len(self.verdicts)

    def __add__(self, other: Report) -> Report:
        return Report(self.verdicts + other.verdicts, self.title, self.phases + other.phases)

    # -- rendering -----------------------------------------------------------------------------------------
    def as_dicts(self) -> list[dict]:
        """One dict per verdict (the summary.json ``doctor`` format), with ``phase`` where tagged."""
        return [{**v.as_dict(), **({"phase": p} if p else {})} for v, p in zip(self.verdicts, self.phases, strict=True)]

    def to_json(self, indent: int | None = 2) -> str:
        """The verdicts as a JSON list (values that JSON cannot hold are written as strings)."""
        return json.dumps(self.as_dicts(), indent=indent, default=str)

    @property
    def likely_cause(self) -> Verdict | None:
        """The verdict to read first: the most severe, most direct cause found (a fail or a warn); None when the
        report found no problem. See :mod:`trainwell.doctor.report_order`."""
        return likely_cause(self.verdicts, self.phases)

    def table(self, full: bool | None = None, titled: bool = True):
        """A ``rich.table.Table`` of the verdicts in reading order (fails, warns, infos, then the rest; a cause
        before what it explains) with one row per finding, numbers to four significant digits.

        Args:
            full: a row for every pass and skip too; default: only when nothing warned or failed (otherwise
                :meth:`rendered` lists them by name under the table).
            titled: the table carries the report's title and status.
        """
        from rich.markup import escape  # a value quotes the user's code ("x[mask]"): text, not console markup
        from rich.table import Table

        full = self._full(full)
        order = reading_order(self.verdicts, self.phases)
        rows = merged([(self.verdicts[i], self.phases[i]) for i in order
                       if full or self.verdicts[i].status not in ("pass", "skip")])
        table = Table(title=f"{self.title}: {self.status}" if titled else None, title_justify="left",
                      show_lines=False)
        show_phase = len({phase for _, phase in rows}) > 1 and "pre" in {phase for _, phase in rows}  # pre-flight
        # rows beside the loop's readings (trainwell watch --check); otherwise the phase says nothing new
        show_expected = any(shown(v.expected) for v, _ in rows)
        show_advice = any(v.advice for v, _ in rows)
        for col in (("when",) if show_phase else ()) + ("check", "status", "measured") + \
                (("expected",) if show_expected else ()) + (("what to do",) if show_advice else ()):
            table.add_column(col, overflow="fold")
        advised: dict[str, str] = {}  # advice -> the first row's check: the same fix is written out once
        for v, phase in rows:
            advice = short_numbers(v.advice or "")
            said = advised.setdefault(advice, v.check) if len(advice) > 40 else v.check
            row = [v.check, f"[{_COLORS[v.status]}]{v.status}[/]", escape(shown(v.value))] + \
                ([escape(shown(v.expected))] if show_expected else []) + \
                ([escape(advice if said == v.check else f"as for '{said}' above")] if show_advice else [])
            table.add_row(*(([PHASES_SHOWN.get(phase, phase)] if show_phase else []) + row))
        return table

    def _full(self, full: bool | None) -> bool:
        return not (self.failed or self.warnings) if full is None else full

    def rendered(self, full: bool | None = None, details: str = "--json, or report.table(full=True)"):
        """The report as it is printed: its title and status, the likely cause and its fix in two lines, the table
        (:meth:`table`), then the checks that passed or were skipped, by name, when they have no rows (``details``:
        where their readings are, for the reader at hand: the command line's option, the library's call)."""
        from rich.console import Group
        from rich.text import Text

        parts = [Text(f"{self.title}: {self.status}", style="bold")]
        cause = self.likely_cause
        if cause is not None:
            parts.append(Text(f"likely cause: {cause.check} ({cause.status}): {shown(cause.value)}"))
            if cause.advice:
                parts.append(Text(f"  what to do: {short_numbers(cause.advice)}"))
        parts.append(self.table(full, titled=False))
        if not self._full(full):
            for status, heading, why in (("pass", "passed", "their readings"), ("skip", "skipped", "why")):
                names = list(dict.fromkeys(v.check for v in self.verdicts if v.status == status))
                if names:
                    parts.append(Text(f"{heading} ({len(names)}): {', '.join(names)} ({why}: {details})"))
        return Group(*parts)

    def __rich__(self):
        return self.rendered()

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=160, record=True, file=io.StringIO())
        console.print(self.rendered())
        return console.export_text()

    def __repr__(self) -> str:
        counts = {s: sum(v.status == s for v in self.verdicts) for s in STATUSES}
        return f"Report({self.title!r}, {len(self)} verdicts: " + ", ".join(f"{n} {s}" for s, n in counts.items()) \
            + ")"
