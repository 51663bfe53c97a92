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


def test_ci_runs_the_readme_test_command_verbatim():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 2 and "trainwell fit" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == commands[1]
