"""The loop bugs of benchmarks/loop_bugs.py under ``trainwell watch``: each loop run as its user wrote it (no
doctor call in it) with the doctor reading it from torch's hooks, against the explicit watch of loop_bugs.py.

Each case's loop (its bug, then its healthy twin) is ``loop_bugs.run(cfg, calls=loop_bugs.Plain())``: the same
arithmetic as loop_bugs.py, seed for seed, without ``doctor.check``, ``doctor.watch``, ``w.step``, ``w.validate``
or ``w.report``. This file is that script too: ``watch_bugs.py --case NAME --side bug|twin`` runs one loop
plainly, and the benchmark hands it to :func:`trainwell.doctor.script_watch.watch_script` with those arguments, as
``trainwell watch benchmarks/watch_bugs.py --case NAME --side bug`` would. The reports it gives are classified as
loop_bugs.py classifies the explicit watch's: per bug "right" (a warn/fail names the planted cause), "other"
(alarms, for another reason), "missed"; per twin its fails and warns (false alarms). Two outcomes name why a bug
is out of the script watch's reach: "check only" (the explicit run names the bug in ``doctor.check``'s pre-flight
report only, which ``trainwell watch`` runs only under ``--check``: with ``--check`` given here, such a bug the
command's pre-flight does not name counts as missed or another alarm) and "doctor call" (the bug is in the doctor's
calls themselves, ``w.step()`` per micro-batch: the plain loops of bug and twin are the same).

The explicit watch (loop_bugs.py's ``run`` of each bug, check report included) runs after all the script
watch's runs (a script watch after a ``doctor.watch`` in the same process would not be ``trainwell watch``'s
fresh process), and the summary line compares the two: "N/216 right under `trainwell watch` vs M/216 explicit".

Usage: OMP_NUM_THREADS=1 python benchmarks/watch_bugs.py [--only NAME ...] [--every 20] [-j 2] [--check]
  (about 6 minutes of CPU at -j 1: 432 loops under the script watch, then 216 explicit; ``--only`` takes
  substrings of case names, as loop_bugs.py's; ``-j 2``: two processes)
  One case as ``trainwell watch`` reads it: trainwell watch benchmarks/watch_bugs.py --case NAME --side bug

Result (x86_64, torch 2.13 CPU): 215/216 right under ``trainwell watch`` vs 216/216 explicit; check only 0, doctor call
1, other alarm 0, missed 0; twins 0 false fails, 0 false warns (section 62; 197/198 in section 61; 177/178 in section
60; 165/166 in section 59; 151/152 before section 59's 14 cases; 149/152 before a loss stopped at the best constant
output's was read by the watch: labels shuffled apart from their inputs and a regressor frozen but its output bias were
named by the pre-flight only; 127/141 before a hand-written Dice's targets were read from its gradient, a multi-task
loss's per head, and the wiring readings, symmetry, ``ignore_index`` and a diverged run's doubled skips were read by the
watch itself; 103/141 in benchmarks/RESULTS.md section 56, before the first step, the script's own validation loss, the
schedulers, the built rates, the rebuilt optimizers, the model a backward reached, the flattened sequence targets and
validations with no step between them were read).
With ``--check`` (``trainwell watch --check``): 215/216 right (197/198 in section 61, 177/178 in section 60); doctor
call 1, other alarm 0, missed 0; twins 0 false fails, 0 false warns (151/152 in section 58, the 2 then named by its
pre-flight only).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import sys
import time
import warnings

import torch
import torch._dynamo  # noqa: F401  (see below)

# torch._dynamo, imported for the first time inside a script watch (the watch imports it), keeps tables of the Tensor
# methods it saw then: trainwell watch's wrapper over Tensor.backward among them, and through it that script's model
# and optimizer, for good. The next script run in this process would find two optimizers alive, not one, and its
# watch would begin later than in a process of its own (``trainwell watch``'s): imported here, before any watch.

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loop_bugs  # noqa: E402

from trainwell.doctor.script_watch import ScriptWatch  # noqa: E402

#: fields of loop_bugs.Loop that change only the doctor's calls, not the loop the user runs
DOCTOR_CALLS_ONLY = ("watch_micro", "give_targets")


def _case(name: str) -> loop_bugs.Case:
    (case,) = [c for c in loop_bugs.CASES if c.name == name]
    return case


def in_doctor_calls(case: loop_bugs.Case) -> bool:
    """The bug is in the doctor's calls only: its plain loop is its twin's."""
    plain = {f: getattr(loop_bugs.Loop(), f) for f in DOCTOR_CALLS_ONLY}
    return loop_bugs.Loop(**{**vars(case.bug), **plain}) == loop_bugs.Loop(**{**vars(case.twin), **plain})


def watched(case: loop_bugs.Case, side: str, every: int, check: bool = False) -> tuple[list, ScriptWatch]:
    """The reports ``trainwell watch`` gives on the plain loop of ``case``'s bug or twin (this file as the script;
    ``check``: ``trainwell watch --check``, the pre-flight at the first step)."""
    gc.collect()  # an earlier run's optimizers gone: the script finds its own alone, as in a process of its own
    sw = ScriptWatch(every, check=check)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reports = sw.run(os.path.abspath(__file__), ["--case", case.name, "--side", side])
    return reports, sw


def _text(verdicts, n: int = 2, width: int = 70) -> str:
    return "; ".join(f"{v.status} {v.check}: {str(v.value)[:width]}" for v in verdicts[:n]) or "clean"


def measure(index: int, every: int, check: bool = False) -> dict:
    """One case under ``trainwell watch`` (``check``: ``--check``): its bug and its twin, their loops run plainly
    and read by the script watch."""
    torch.set_num_threads(1)
    case = loop_bugs.CASES[index]
    reports, sw = watched(case, "bug", every, check)
    outcome, found = loop_bugs.classify(reports, case.cause)
    twin_reports, tw = watched(case, "twin", every, check)
    twin = loop_bugs.flagged(twin_reports)
    fails = sum(v.status == "fail" for v in twin)
    return {"name": case.name, "outcome": outcome, "why": _text(found), "loops": len(reports),
            "titles": [r.title.rsplit("(", 1)[-1].rstrip(")") for r in reports], "error": sw.error or tw.error,
            "twin": _text(twin, 3, 60), "false_fails": fails, "false_warns": len(twin) - fails}


def explicit(index: int, every: int) -> dict:
    """One case's bug under the explicit watch (loop_bugs.py's run): its outcome, and where the right verdict is:
    in the watch's report ("watch") or in the pre-flight check's only ("check")."""
    torch.set_num_threads(1)
    case = loop_bugs.CASES[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre, rep = loop_bugs.run(case.bug, every=every)
    outcome, why = loop_bugs.classify((pre, rep), case.cause)
    where = ("watch" if loop_bugs.classify([rep], case.cause)[0] == "right" else "check") \
        if outcome == "right" else ""
    return {"explicit": outcome, "where": where, "explicit_why": _text(why, 1, 60)}


def compare(case: loop_bugs.Case, row: dict, check: bool = False) -> dict:
    """The script watch's outcome for a bug it does not name, told apart: in the doctor's calls, or a
    pre-flight check's only (not under ``--check``, which runs the pre-flight: a bug it misses there is missed)."""
    if row["outcome"] != "right" and in_doctor_calls(case):
        row["outcome"] = "doctor call"
    elif row["outcome"] != "right" and row["where"] == "check" and not check:
        row["outcome"] = "check only"
    return row


def _rows(indices: list[int], every: int, jobs: int, check: bool = False) -> list[dict]:
    """The script watch's rows, then the explicit watch's: the script watch's runs come first in a process (as
    in ``trainwell watch``'s, where no doctor.watch ran before), in ``jobs`` processes side by side."""
    tasks = [(i, every, check) for i in indices]
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            watch_rows = pool.map(_measure, tasks, chunksize=1)
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            explicit_rows = pool.map(_explicit, [t[:2] for t in tasks], chunksize=1)
    else:
        watch_rows = []
        for n, task in enumerate(tasks):
            watch_rows.append(measure(*task))
            print(f"  {n + 1}/{len(tasks)} under trainwell watch", file=sys.stderr, flush=True)
        explicit_rows = [explicit(*task[:2]) for task in tasks]
    return [compare(loop_bugs.CASES[i], {**w, **e}, check) for i, w, e in zip(indices, watch_rows, explicit_rows,
                                                                        strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="substrings of case names to run")
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("-j", type=int, default=1, help="cases run side by side (processes)")
    ap.add_argument("--case", default=None, help="run this case's loop plainly (the script trainwell watch reads)")
    ap.add_argument("--side", choices=("bug", "twin"), default="bug")
    ap.add_argument("--check", action="store_true",
                    help="run the cases under `trainwell watch --check` (the pre-flight at the first step)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.case is not None:
        case = _case(args.case)
        loop_bugs.run(case.bug if args.side == "bug" else case.twin, every=args.every, calls=loop_bugs.Plain())
        return
    indices = [i for i, c in enumerate(loop_bugs.CASES) if not args.only or any(s in c.name for s in args.only)]
    command = "`trainwell watch --check`" if args.check else "`trainwell watch`"
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {len(indices)} bug classes, "
          f"every {args.every}, -j {args.j}, {command}")
    tic = time.perf_counter()
    tally: dict[str, int] = {}
    explicit_right = false_fails = false_warns = 0
    print(f"| case | explicit | {command} | read from | twin under {command} |")
    print("|---|---|---|---|---|")
    for row in _rows(indices, args.every, args.j, args.check):
        tally[row["outcome"]] = tally.get(row["outcome"], 0) + 1
        explicit_right += row["explicit"] == "right"
        false_fails += row["false_fails"]
        false_warns += row["false_warns"]
        shown = f"{row['explicit']} ({row['where']})" if row["explicit"] == "right" else row["explicit"]
        found = "" if row["outcome"] in ("check only", "doctor call") else f" ({row['why']})"
        error = f" [script error: {row['error'].strip().splitlines()[-1]}]" if row["error"] else ""
        print(f"| {row['name']} | {shown}: {row['explicit_why']} | **{row['outcome']}**{found}{error} | "
              f"{', '.join(row['titles']) or 'no loop'} | {row['twin']} |", flush=True)
    n = len(indices)
    print(f"\n{tally.get('right', 0)}/{n} right under {command} vs {explicit_right}/{n} explicit; "
          f"under {command}: check only {tally.get('check only', 0)}, doctor call "
          f"{tally.get('doctor call', 0)}, other alarm {tally.get('other', 0)}, missed {tally.get('missed', 0)}; "
          f"twins: {false_fails} false fails, {false_warns} false warns; {time.perf_counter() - tic:.0f} s")


def _measure(args: tuple) -> dict:
    return measure(*args)


def _explicit(args: tuple) -> dict:
    return explicit(*args)


if __name__ == "__main__":
    main()
