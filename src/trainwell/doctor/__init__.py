"""The lecture's "what if things are not working?" checklist, automated: pre-flight checks, in-flight monitors
and post-flight diagnosis. Every check returns a :class:`Verdict`; nothing here prints.

On your own model, data and loop:

- :func:`check` runs every pre-flight check and returns a :class:`Report` (no side effects on your objects);
- :func:`watch` wraps your training loop (``w.step(loss)`` per step) and ``w.report()`` gives the monitors'
  verdicts and the post-flight diagnosis.
"""

from trainwell.doctor.check import check, untouched
from trainwell.doctor.report import Report
from trainwell.doctor.verdict import Verdict, worst
from trainwell.doctor.watch import Watch, watch

__all__ = ["Report", "Verdict", "Watch", "check", "untouched", "watch", "worst"]
