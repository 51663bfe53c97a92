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


def test_the_script_is_compiled_as_python_compiles_it_without_this_module_s_future_flags(tmp_path):
    script = tmp_path / "typed.py"  # `python typed.py` evaluates annotations: no `from __future__ import annotations`
    script.write_text("def f(x: int):\n    return x\nkind = f.__annotations__['x']\n", encoding="utf-8")
    held = []
    assert run_as_main(str(script), held.append) == (None, 0, False, None)
    assert held[0]["kind"] is int


def test_the_script_s_traceback_starts_at_its_own_frame_as_python_prints_it(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("def train():\n    raise RuntimeError('boom')\ntrain()\n", encoding="utf-8")
    error, status, exited, _ = run_as_main(str(script), lambda names: None)
    assert (status, exited) == (1, True)
    lines = error.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == f'  File "{script}", line 3, in <module>'  # the script's frame first, as python shows it
    assert "script_exec" not in error and lines[-1] == "RuntimeError: boom"


def test_the_watch_command_names_a_script_that_does_not_compile_in_one_line(tmp_path, capsys):
    from trainwell.cli import main

    broken = tmp_path / "broken.py"
    broken.write_text("import torch\ndef f(:\n    pass\n", encoding="utf-8")
    assert main(["watch", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err == (f"trainwell watch: error: {broken}, line 2: invalid syntax: def f(: (SyntaxError): the script "
                   "does not compile, so nothing ran\n")
    binary = tmp_path / "weights.py"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    assert main(["watch", str(binary)]) == 2
    assert "weights.py holds null bytes, as a binary file does: it is not a Python script" in capsys.readouterr().err
    assert main(["watch", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"trainwell watch: error: {str(tmp_path)!r} is a folder, not the path of a "
                                       "Python file that trains a model\n")


def test_the_script_s_file_is_its_absolute_path_as_python_gives_it(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "train.py").write_text("where = __file__\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # given relative, as `trainwell watch proj/train.py`
    held = []
    assert run_as_main("proj/train.py", held.append) == (None, 0, False, None)
    assert held[0]["where"] == str(tmp_path / "proj" / "train.py")  # `python proj/train.py` gives the same


def test_ctrl_c_in_the_script_is_its_status_130_and_one_line_saying_the_report_reads_up_to_there(tmp_path):
    script = tmp_path / "stopped.py"
    script.write_text("raise KeyboardInterrupt\n", encoding="utf-8")
    error, status, exited, _ = run_as_main(str(script), lambda names: None)
    assert (status, exited) == (130, True)  # as `python stopped.py` exits on Ctrl-C
    assert error == "KeyboardInterrupt: the script was stopped (Ctrl-C); what follows reads its loop up to there"
