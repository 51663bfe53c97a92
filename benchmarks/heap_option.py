"""The ``--heap`` option of the population benchmarks: freed memory kept in the process, as every trainwell process
keeps it (:func:`trainwell.heap.keep_freed_memory`), or glibc malloc's own thresholds, to measure the difference."""

from __future__ import annotations

import argparse

from trainwell.heap import keep_freed_memory


def add_heap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heap", choices=("kept", "default"), default="kept",
                        help="kept: freed memory stays in the process, as in every trainwell process "
                             "(trainwell.heap.keep_freed_memory); default: glibc malloc's own thresholds")


def apply_heap_option(args: argparse.Namespace) -> None:
    if args.heap == "kept":
        keep_freed_memory()
