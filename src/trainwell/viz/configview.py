"""The config as a report shows it: the keys a user changed from trainwell's defaults, and the resolved
``config.toml`` with those keys highlighted (used by the fit, sweep and prune pages)."""

from __future__ import annotations

import json

from trainwell.viz import page
from trainwell.viz.page import Raw, esc


def config_overrides(config_text: str, parsed: dict | None = None) -> dict[str, tuple[object, object]]:
    """``{"optim.lr": (0.003, 0.01)}``: every config key whose value differs from trainwell's default
    (``parsed``: the text already read by :func:`read_config`, which is then not parsed again)."""
    from trainwell.config import Config

    out = {}
    diff_config(read_config(config_text) if parsed is None else parsed, Config().to_dict(), "", out)
    return out


def diff_config(raw: dict, default, prefix: str, out: dict) -> None:
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        base = default.get(key) if isinstance(default, dict) else None
        if isinstance(value, dict) and isinstance(base, dict) and key != "options":
            diff_config(value, base, dotted + ".", out)
        elif value != base and not (isinstance(value, list) and isinstance(base, tuple) and list(base) == value):
            out[dotted] = (value, base)


def config_html(config_text: str, overrides: dict) -> str:
    lines, section = [], ""
    for line in config_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped.strip("[]").strip()
        key = stripped.split("=", 1)[0].strip() if "=" in stripped and not stripped.startswith("#") else None
        dotted = f"{section}.{key}" if section and key else key
        lines.append(f"<mark>{esc(line)}</mark>" if key and dotted in overrides else esc(line))
    rows = [[k, Raw(f"<code>{esc(json.dumps(v, default=str))}</code>"),
             Raw(f"<code>{esc(json.dumps(d, default=str))}</code>")] for k, (v, d) in overrides.items()]
    table = page.table(["key", "your value", "default"], rows) if rows else "<p>No overrides: trainwell's defaults.</p>"
    return (f"<h3>Your settings (different from the defaults)</h3>{table}"
            f"<details><summary>Resolved config.toml (your settings highlighted)</summary>"
            f"<pre id='config'>{chr(10).join(lines)}</pre></details>")


def read_config(text: str) -> dict:
    if not text:
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except Exception:
        return {}
