"""The lab's static catalog: what ``trainwell lab list`` prints and ``lab run`` checks names against, read without
importing an experiment (or torch), and always equal to what the experiment modules themselves declare."""

import os
import re
import subprocess
import sys

import pytest

from trainwell.lab import registry


def _declared(module: str) -> dict:
    """NAME, CLAIM and EXPECTED_S as the module's source assigns them (read with ast: no torch, no import)."""
    import ast
    from pathlib import Path

    import trainwell.lab

    tree = ast.parse((Path(trainwell.lab.__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("NAME", "CLAIM", "EXPECTED_S"):
                out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_the_catalog_is_what_the_modules_declare():
    for name, entry in registry.CATALOG.items():
        declared = _declared(entry.module)
        assert declared["NAME"] == name
        assert declared["CLAIM"] == entry.claim, name
        assert declared["EXPECTED_S"] == {"quick": entry.quick_s, "default": entry.default_s}, name
        assert entry.quick_s <= entry.default_s, f"{name}: the quick size is the smaller run"
    assert [r["name"] for r in registry.listing()] == registry.names() == list(registry.CATALOG)
    assert [r["claim"] for r in registry.listing()] == [e.claim for e in registry.CATALOG.values()]


@pytest.mark.slow
def test_the_imported_modules_agree_with_the_catalog():
    mods = registry.experiments()
    assert list(mods) == registry.names()  # same names, same order
    for name, mod in mods.items():
        entry = registry.CATALOG[name]
        assert mod.__name__ == f"trainwell.lab.{entry.module}"
        assert (entry.claim, {"quick": entry.quick_s, "default": entry.default_s}) == (mod.CLAIM, mod.EXPECTED_S)


def test_an_unknown_name_gets_the_nearest_one_and_every_allowed_one():
    text = registry.unknown("capacty", registry.names())
    assert text.startswith("unknown experiment 'capacty': did you mean 'capacity'? allowed are capacity, ")
    assert text.endswith(registry.names()[-1])
    assert "did you mean" not in registry.unknown("zzz", registry.names())


# what the command imported, from sys.modules at its end (-X importtime misses importlib.import_module)
WRAP = """
import runpy, sys
sys.argv = ["trainwell", *sys.argv[1:]]
try:
    runpy.run_module("trainwell", run_name="__main__", alter_sys=True)
finally:
    print("#imported " + " ".join(sorted(sys.modules)), file=sys.stderr)
"""


def _cli(tmp_path, *args):
    run = subprocess.run([sys.executable, "-c", WRAP, *args], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"})
    imported = re.search(r"^#imported (.*)$", run.stderr, re.M).group(1).split()
    lines = [ln for ln in run.stderr.splitlines() if not ln.startswith("#imported")]
    return run, imported, lines


def test_lab_list_needs_no_experiment_and_no_torch(tmp_path):
    run, imported, lines = _cli(tmp_path, "lab", "list")
    assert run.returncode == 0 and lines == []
    assert "torch" not in imported and [m for m in imported if m.startswith("trainwell.lab.")] == [
        "trainwell.lab.registry"]
    for name in registry.names():
        assert name in run.stdout
    # piped, the table is printed whole: each experiment's claim on its own row's one line
    claims = {r["name"]: r["claim"] for r in registry.listing()}
    rows = {line.split("│")[1].strip(): line for line in run.stdout.splitlines() if line.startswith("│")}
    assert set(rows) == set(claims) and all(claims[name] in row for name, row in rows.items())


def test_a_misspelt_experiment_is_answered_before_torch(tmp_path):
    run, imported, lines = _cli(tmp_path, "lab", "run", "capacty")
    assert "torch" not in imported
    assert run.returncode == 2 and len(lines) == 1
    assert "unknown experiment 'capacty': did you mean 'capacity'? allowed are capacity," in lines[0]
