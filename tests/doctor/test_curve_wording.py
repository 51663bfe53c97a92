"""The loss curve's verdict says what the curve did in words that hold: a share of the drop made by mid-run lies in
[0, 100%], and a drop past 0 (or past the loss's floor) is a size, not a share."""

import math
import re

import pytest

from trainwell.doctor.diagnosis import learning_rate_diagnosis


def _shares(value):
    return [int(s) for s in re.findall(r"(-?\d+)% of it by mid-run", value)]


@pytest.mark.parametrize("curve, words", [
    # the loss dips to 0.5 at mid-run and ends at 1.3: lower at mid-run than at the end
    ([2.0 - 1.5 * math.sin(math.pi * t / 400) - (0.0 if t < 200 else 0.5 * (t - 200) / 200) for t in range(400)],
     "the loss was lower at mid-run (0.494) than at the end"),
    # the loss climbs to 2.5 before it falls to 1.2: higher at mid-run than at the start
    ([2.0 + math.sin(math.pi * t / 400) - t / 400 for t in range(400)],
     "the loss was higher at mid-run (2.5) than at the start"),
])
def test_a_share_of_the_drop_outside_0_to_100_percent_is_said_in_words(curve, words):
    value = learning_rate_diagnosis(curve).value
    assert words in value and not _shares(value)


def test_a_loss_that_turns_negative_has_its_drop_given_as_a_size():
    value = learning_rate_diagnosis([1 - 1.5 * (1 - math.exp(-t / 50)) for t in range(400)]).value
    assert "a drop of 1.04, below 0" in value and not re.search(r"\d{3,}% drop", value)


def test_a_steady_decrease_keeps_its_share_of_the_drop():
    value = learning_rate_diagnosis([2.3 * math.exp(-t / 40) + 0.05 for t in range(400)]).value
    assert "97% drop" in value and _shares(value) == [99]
