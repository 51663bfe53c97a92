"""``trainwell prune`` on a config without a validation split (``data.val_fraction = 0``): its table shows "-"
for the validation accuracy and the early-stop step, which such runs do not have, instead of crashing."""
import pytest
from rich.console import Console

from tests.helpers import tiny
from trainwell.cli import main
from trainwell.cli_tables import lottery
from trainwell.lottery import RoundResult


def rendered(table) -> str:
    console = Console(width=120, record=True)
    console.print(table)
    return console.export_text()


def test_the_lottery_table_shows_missing_accuracies_as_dashes():
    rows = [RoundResult(0, "ticket", 1.0, 0.75, None, None, "r0"), RoundResult(1, "ticket", 0.83, None, 0.5, 12, "r1")]
    text = rendered(lottery(rows))
    first, second = (line for line in text.splitlines() if "│ ticket │" in line)
    assert [c.strip() for c in first.split("│")[4:7]] == ["75.00%", "-", "-"]
    assert "83.00%" in second and "50.00%" in second and second.split("│")[4].strip() == "-"
    assert second.split("│")[6].strip() == "12"


@pytest.mark.slow  # two trainings
def test_prune_runs_without_a_validation_split(workdir, capsys):
    sets = [a for s in [*tiny(epochs=2), "data.val_fraction=0"] for a in ("--set", s)]
    assert main(["prune", *sets, "--rounds", "1", "--out", "p"]) == 0
    out = capsys.readouterr().out
    assert "lottery tickets" in out and (workdir / "p" / "results.csv").is_file()
