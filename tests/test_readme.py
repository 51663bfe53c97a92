"""The README stays true: its library example runs, and CI runs exactly its test command."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_has_its_library_examples():
    assert len(PYTHON_BLOCKS) >= 2 and "make_pipeline" in PYTHON_BLOCKS[0] and "Trainer" in PYTHON_BLOCKS[1]


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_library_example_runs(workdir, index, capsys):
    namespace = {}
    exec(PYTHON_BLOCKS[index].replace("epochs=20", "epochs=1"), namespace)
    if index == 0:  # the plain PyTorch loop: trained and stopped by the early-stopping criterion
        assert "early stopping: no improvement for 5 epochs" in capsys.readouterr().out
        assert min(namespace["val_losses"]) < 0.3  # 0.07 measured; ln 10 = 2.3 at chance


def test_ci_runs_the_readme_test_commands_verbatim_fast_then_slow_then_browser():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 4 and "trainwell fit" in commands[0]
    fast, slow, browser = commands[1], commands[2], commands[3]
    assert fast.endswith('pytest -m "not slow"') and slow.endswith('pytest -m "slow and not browser"')
    assert browser.endswith("pytest -m browser")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert fast in ci and slow in ci and browser in ci and ci.index(fast) < ci.index(slow) < ci.index(browser)


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (1, 1), (5, 1)])
def test_ci_treats_no_tests_collected_as_a_failure(code, expected):
    import subprocess

    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    check = re.search(r"^check\(\) \{.*?^\}", script, re.S | re.M).group(0)
    done = subprocess.run(["bash", "-c", f"{check}\n(exit {code}); check probe; echo passed"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == expected and ("passed" in done.stdout) == (expected == 0)
    if code == 5:
        assert "no tests collected" in done.stderr


def test_the_slow_and_browser_markers_are_registered_and_markers_are_strict():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^markers = \[\n\s+"slow: ', pyproject, re.M) and "--strict-markers" in pyproject
    assert re.search(r'^\s+"browser: ', pyproject, re.M)


def test_browser_tests_are_also_slow_so_the_fast_set_leaves_them_out():
    import ast

    tree = ast.parse((ROOT / "tests" / "test_report_browser.py").read_text(encoding="utf-8"))
    marks = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "pytestmark")
    assert {m.attr for m in marks.value.elts} == {"slow", "browser"}

