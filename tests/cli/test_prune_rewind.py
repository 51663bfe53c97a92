"""``trainwell prune --rewind K`` past the steps the dense run trains: no snapshot would be taken and every ticket
would silently start from theta_0; the command says so in one line instead."""
import re

from tests.helpers import tiny
from trainwell.cli import main


def _sets(*more: str) -> list[str]:
    return [a for s in [*tiny(epochs=2), *more] for a in ("--set", s)]


def test_a_rewind_step_past_the_planned_training_is_refused_before_any_folder(workdir, capsys):
    assert main(["prune", *_sets(), "--rewind", "5000", "--rounds", "1", "--out", "p"]) == 2
    err = capsys.readouterr().err
    m = re.fullmatch(r"trainwell prune: error: --rewind 5000 is past the end of training: the dense run trains (\d+) "
                     r"steps \(2 epochs\); use a step count up to \1 or a fraction in \[0, 1\)\n", err)
    assert m and int(m.group(1)) < 5000
    assert not (workdir / "p").exists()


def test_a_dense_run_stopped_before_the_rewind_step_is_named_not_rewound_to_theta0(workdir, capsys):
    stop_after_one = ["train.epochs=3", "optim.schedule=none", 'stop.criteria=["fixed"]', "stop.fixed_epochs=1",
                      "stop.fixed_more=0"]
    assert main(["prune", *_sets(*stop_after_one), "--rewind", "0.9", "--rounds", "1", "--out", "p"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("trainwell prune: error: --rewind 0.9: the dense run stopped after ")
    assert "(fixed schedule" in err and "rewind to an earlier step or a fraction of training" in err
    assert (workdir / "p" / "round-0" / "summary.json").is_file()  # the dense run is kept
