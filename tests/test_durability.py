"""Files made durable together (trainwell.durability): inside the block every atomic write is complete at once and
no per-file sync waits for the disk; the block's end syncs each filesystem once (or every file and folder where
there is no syncfs); a population's member files are synced per phase, not per file."""

import json
import os

import pytest

from trainwell import durability
from trainwell.config import load_config
from trainwell.durability import synced_together
from trainwell.pipeline import fit_population
from trainwell.rundir import atomic_write_json, sync_file


@pytest.fixture
def calls(monkeypatch):
    """Counts of os.fsync and of syncfs calls (the real calls still run)."""
    seen = {"fsync": [], "syncfs": 0}
    real_fsync = os.fsync

    def fsync(fd):
        seen["fsync"].append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    if durability.SYNCFS is not None:
        real_syncfs = durability.SYNCFS

        def syncfs(fd):
            seen["syncfs"] += 1
            return real_syncfs(fd)

        monkeypatch.setattr(durability, "SYNCFS", syncfs)
    return seen


def test_outside_the_block_every_write_syncs_its_file_and_folder(tmp_path, calls):
    for i in range(3):
        atomic_write_json(tmp_path / f"f{i}.json", {"i": i})
    assert len(calls["fsync"]) == 6  # file + folder, per write
    assert calls["syncfs"] == 0


@pytest.mark.skipif(durability.SYNCFS is None, reason="no syncfs on this platform")
def test_in_the_block_files_are_complete_at_once_and_synced_once_at_the_end(tmp_path, calls):
    with synced_together():
        for i in range(20):
            atomic_write_json(tmp_path / f"m{i % 4}" / f"f{i}.json", {"i": i})
            assert json.loads((tmp_path / f"m{i % 4}" / f"f{i}.json").read_text()) == {"i": i}  # readable now
        sync_file(tmp_path / "m0" / "f0.json")
        assert calls["fsync"] == [] and calls["syncfs"] == 0  # nothing waited for the disk inside the block
        assert not list(tmp_path.rglob("*.tmp"))  # renamed at once: no temp file left behind
    assert calls["fsync"] == [] and calls["syncfs"] == 1  # one filesystem: one sync


def test_without_syncfs_every_file_and_folder_is_synced_once_at_the_end(tmp_path, calls, monkeypatch):
    monkeypatch.setattr(durability, "SYNCFS", None)
    with synced_together():
        for i in range(6):
            atomic_write_json(tmp_path / f"m{i % 2}" / f"f{i}.json", {"i": i})
        atomic_write_json(tmp_path / "m0" / "f0.json", {"i": "again"})  # a file written twice is synced once
        assert calls["fsync"] == []
    assert len(calls["fsync"]) == 6 + 2  # each file once, each of the two folders once
    assert len(set(calls["fsync"])) == len(calls["fsync"])


@pytest.mark.skipif(durability.SYNCFS is None, reason="no syncfs on this platform")
def test_an_inner_block_is_part_of_the_outer_one_and_a_raising_block_still_syncs(tmp_path, calls):
    with pytest.raises(RuntimeError, match="stop"):
        with synced_together():
            with synced_together():
                atomic_write_json(tmp_path / "a.json", [1])
            assert calls["syncfs"] == 0  # the inner block's end is not the outer one's
            atomic_write_json(tmp_path / "b.json", [2])
            raise RuntimeError("stop")
    assert calls["syncfs"] == 1 and calls["fsync"] == []
    assert json.loads((tmp_path / "b.json").read_text()) == [2]  # what was written stays written


def test_the_real_sync_runs_on_this_platform(tmp_path):
    with synced_together():
        atomic_write_json(tmp_path / "x.json", {"ok": True})
        (tmp_path / "gone.json").write_text("{}")
        atomic_write_json(tmp_path / "gone.json", {})
        (tmp_path / "gone.json").unlink()  # written then deleted in the block: nothing to sync
    assert json.loads((tmp_path / "x.json").read_text()) == {"ok": True}


POPULATION = ["data.name=spirals", "data.options={n_per_class = 30}", "model.kind=mlp", "model.hidden=[8]",
              "train.epochs=2", "train.batch_size=32", "report.enabled=false", "doctor.preflight=false",
              "doctor.monitor_every=0", "optim.schedule=none", "train.checkpoint_every=1"]


def test_a_population_syncs_its_members_files_per_phase_not_per_file(tmp_path, calls, monkeypatch):
    """The waits for the disk do not grow with the members: 2 and 6 members make the same number of fsync and
    syncfs calls (the population's own checkpoint and metrics, synced as a fit's are)."""
    monkeypatch.chdir(tmp_path)
    counts = []
    for size in (2, 6):
        calls["fsync"].clear()
        calls["syncfs"] = 0
        cfgs = [load_config(None, POPULATION + [f"optim.lr={0.01 * (m + 1)}"]) for m in range(size)]
        fit_population(cfgs, out=f"pop{size}")
        assert all((tmp_path / f"pop{size}" / f"member-{m}" / "summary.json").exists() for m in range(size))
        counts.append((len(calls["fsync"]), calls["syncfs"]))
    assert counts[0] == counts[1], counts
