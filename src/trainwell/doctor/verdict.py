"""The result of one doctor check: pass / warn / fail, what was measured, what was expected, what to do.

Two more statuses never count as a problem: ``skip`` (the check could not look, and ``value`` says why: a pass
would claim a look that never happened) and ``info`` (a fact the user should see, e.g. which parameters are
frozen, that is neither good nor bad on its own)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

STATUSES = ("pass", "warn", "fail", "skip", "info")


@dataclass
class Verdict:
    """One check's outcome. ``value`` and ``expected`` are short human-readable strings or numbers."""

    check: str
    status: str
    value: object = None
    expected: object = None
    advice: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status = {self.status!r} is not allowed: use one of {', '.join(STATUSES)}")

    def as_dict(self) -> dict:
        return asdict(self)


def worst(verdicts: list[Verdict]) -> str:
    """'fail' if any failed, else 'warn' if any warned, else 'pass' (skips and infos are not problems)."""
    statuses = {v.status for v in verdicts}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
