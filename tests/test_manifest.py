"""The manifest of what trainwell wrote (trainwell/manifest.py): a file written where no folder is marked is
remembered as such (no search up to the root at every epoch), and a folder marked later - the file's own or one
above it - records the file again. Oracle: the manifest's own lines (``recorded``)."""

from trainwell import manifest
from trainwell.runlock import _write_marker


def test_files_written_before_their_folder_is_marked_are_recorded_once_it_is(tmp_path):
    own, above = tmp_path / "own", tmp_path / "above"
    for path in (own / "metrics.jsonl", above / "member-0" / "metrics.jsonl"):
        path.parent.mkdir(parents=True)
        manifest.record(path)  # no marked folder yet: nothing recorded, and the folder remembered as unmarked
        manifest.record(path)
    assert manifest.recorded(own) is None and manifest.recorded(above) is None
    _write_marker(own, "fit")
    _write_marker(above, "sweep")
    manifest.record(own / "metrics.jsonl")
    manifest.record(above / "member-0" / "metrics.jsonl")
    assert "metrics.jsonl" in manifest.recorded(own)
    assert "member-0/metrics.jsonl" in manifest.recorded(above)
