"""A doctor verdict (doctor/verdict.py) takes only the statuses it knows."""

import pytest

from trainwell.doctor.verdict import Verdict


def test_verdict_rejects_unknown_status():
    with pytest.raises(ValueError, match="status"):
        Verdict("x", "ok")
