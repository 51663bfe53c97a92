"""The lab's results as Markdown tables, read from a finished ``trainwell lab run`` folder (nothing typed by hand).

    trainwell lab run --all --seeds 3 --out OUT          # the claims, every seed
    trainwell lab run --all --control --out OUT          # every control (seed 0), into OUT/NAME/control
    python benchmarks/lab_table.py OUT > table.md

Prints two tables: one row per experiment (its claim, its verdict on every seed, the combined status, the
control's verdict, the wall time and the paper's number from the module's ``LITERATURE``), then one row per
criterion (its effect and 95% interval on every seed, the threshold and the method). An experiment whose summary
is missing is listed as "not run", never skipped silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainwell.lab import registry
from trainwell.lab.base import combine


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _cell(c: dict) -> str:
    """One criterion on one seed: 'effect [lo, hi] status' (an exact check: 'value status')."""
    if c.get("method") == "exact" or (c.get("lo") is None and c.get("hi") is None):
        return f"{_num(c.get('effect'))} {c['status']}"
    return f"{_num(c.get('effect'))} [{_num(c.get('lo'))}, {_num(c.get('hi'))}] {c['status']}"


def _per_seed(summary: dict) -> list[tuple[int, dict]]:
    rows = summary.get("per_seed") or [{"seed": summary.get("seed", 0), "verdict": summary.get("verdict", {})}]
    return [(r.get("seed"), r.get("verdict") or {}) for r in rows]


def _literature(name: str) -> str:
    text = getattr(registry.get(name), "LITERATURE", "") or ""
    return text.replace("|", "/").replace("\n", " ")


def _claim(name: str) -> str:
    return registry.CATALOG[name].claim.replace("|", "/")


def experiment_rows(out: Path) -> list[str]:
    lines = ["| experiment | claim | verdict per seed | combined | control | wall (s) | the paper's number |",
             "|---|---|---|---|---|---|---|"]
    for name in registry.names():
        s = _load(out / name / "summary.json")
        ctrl = _load(out / name / "control" / "summary.json")
        if s is None:
            lines.append(f"| {name} | {_claim(name)} | not run | - | - | - | - |")
            continue
        per = _per_seed(s)
        statuses = [v.get("status", "error") for _, v in per]
        control = "not run" if ctrl is None else combine([v.get("status", "error") for _, v in _per_seed(ctrl)])
        seeds = ", ".join(f"{st} (seed {k})" for (k, _), st in zip(per, statuses, strict=True))
        lines.append(f"| {name} | {_claim(name)} | {seeds} | **{combine(statuses)}** | {control} | "
                     f"{_num(s.get('wall_s'))} | {_literature(name)} |")
    return lines


def criterion_rows(out: Path) -> list[str]:
    lines = ["| experiment | criterion | per seed: effect [95% interval] status | threshold | method |",
             "|---|---|---|---|---|"]
    for name in registry.names():
        s = _load(out / name / "summary.json")
        if s is None:
            continue
        by_name: dict[str, list[str]] = {}
        meta: dict[str, dict] = {}
        for k, v in _per_seed(s):
            for c in (v.get("evidence") or {}).get("criteria", []):
                by_name.setdefault(c["name"], []).append(f"seed {k}: {_cell(c)}")
                meta[c["name"]] = c
        for crit, cells in by_name.items():
            c = meta[crit]
            lines.append(f"| {name} | {crit.replace('|', '/')} | {'; '.join(cells)} | {_num(c.get('threshold'))} | "
                         f"{c.get('method', '')} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a `trainwell lab run --out` folder")
    a = ap.parse_args(argv)
    if not a.out.is_dir():
        print(f"error: {a.out} is not a folder (give the --out of a finished `trainwell lab run`)", file=sys.stderr)
        return 2
    print("\n".join(experiment_rows(a.out)))
    print()
    print("\n".join(criterion_rows(a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
