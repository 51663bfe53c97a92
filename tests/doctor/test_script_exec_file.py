"""``trainwell watch`` runs the user's script from its file and closes the file (no ResourceWarning left)."""

import gc
import warnings

from trainwell.doctor.script_exec import run_as_main


def test_the_script_runs_as_main_and_its_file_is_closed(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys\nresult = __name__\n", encoding="utf-8")
    held = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        outcome = run_as_main(str(script), held.append)
        gc.collect()
    assert outcome == (None, 0, False, None)
    assert held[0]["result"] == "__main__"
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
