"""Ctrl-C during ``trainwell prune`` or a sweep trained member after member stops one of its training runs: the
answer is the command's own (a sweep's ``sweep --resume``; a prune, which does not resume: where the finished rounds
are, how to start again), not that run's ``trainwell fit --resume``, which would finish one run and never the
command."""
from tests.helpers import tiny
from trainwell import lottery, pipeline
from trainwell.cli import main
from trainwell.train.interrupt import Interrupted


def test_ctrl_c_in_a_round_names_prune_s_folder_and_how_to_start_again(workdir, capsys, monkeypatch):
    def stopped(cfg, out, **kwargs):
        raise Interrupted(out, "SIGINT", 3)

    monkeypatch.setattr(lottery, "fit", stopped)
    sets = [a for s in tiny(epochs=2) for a in ("--set", s)]
    assert main(["prune", *sets, "--rounds", "1", "--out", "p"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "trainwell prune: interrupted by SIGINT in round-0 after 3 completed epochs; prune does not resume: the rounds "
        "that finished are kept in p; run the prune again to start over (--out p --force replaces this folder)")
    assert main(["prune", *sets, "--rounds", "1", "--out", "p"]) == 2  # the folder is a prune run's: --force
    assert capsys.readouterr().err.endswith("pass --force to replace it if it is a trainwell prune run\n")


def test_ctrl_c_in_a_sequential_sweep_s_member_names_sweep_resume(workdir, capsys, monkeypatch):
    def stopped(cfg, out=None, **kwargs):
        raise Interrupted(out, "SIGINT", 2)

    monkeypatch.setattr(pipeline, "fit", stopped)
    sets = [a for s in tiny(epochs=2) for a in ("--set", s)]
    assert main(["sweep", *sets, "--grid", "optim.lr=0.1,0.01", "--sequential", "--out", "sw"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "trainwell sweep: interrupted by SIGINT in member-0 after 2 completed epochs; checkpoint saved: continue the "
        "sweep with `trainwell sweep --resume sw`")
