"""A doctor report: the verdicts of one run of checks, as a rich table, JSON, or lists of failures and warnings.

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

from trainwell.doctor.verdict import STATUSES, Verdict, worst

_COLORS = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim", "info": "cyan"}


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

    def table(self):
        """A ``rich.table.Table`` of the verdicts (status coloured)."""
        from rich.table import Table

        table = Table(title=f"{self.title}: {self.status}", show_lines=False)
        show_phase = any(self.phases)
        for col in (("phase",) if show_phase else ()) + ("check", "status", "value", "advice"):
            table.add_column(col, overflow="fold")
        for v, phase in zip(self.verdicts, self.phases, strict=True):
            row = [v.check, f"[{_COLORS[v.status]}]{v.status}[/]", str(v.value), v.advice or ""]
            table.add_row(*(([phase] if show_phase else []) + row))
        return table

    def __rich__(self):
        return self.table()

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=160, record=True, file=io.StringIO())
        console.print(self.table())
        return console.export_text()

    def __repr__(self) -> str:
        counts = {s: sum(v.status == s for v in self.verdicts) for s in STATUSES}
        return f"Report({self.title!r}, {len(self)} verdicts: " + ", ".join(f"{n} {s}" for s, n in counts.items()) \
            + ")"
