"""The lecture's "what if things are not working?" checklist, automated: pre-flight checks, in-flight monitors
and post-flight diagnosis. Every check returns a :class:`Verdict`; nothing here prints."""

from trainwell.doctor.verdict import Verdict, worst

__all__ = ["Verdict", "worst"]
