"""The README stays true: its library example runs, and CI runs exactly its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_library_example_runs(workdir):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    exec(code.replace("epochs=20", "epochs=1"), {})


def test_ci_runs_the_readme_test_command_verbatim():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 2 and "trainwell fit" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == commands[1]
