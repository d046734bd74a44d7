"""Two runs of ``full_resolution_stage.py`` case by case: the new default against the old, and both against the
stored ``today`` and ``truth`` of the old run.

Usage::

    python benchmarks/compare_stage_runs.py OLD.json NEW.json [NEW2.json ...] [--out FILE.md]

``OLD.json`` holds ``today``, ``default`` and ``truth`` per case (a merged run); the ``NEW`` files hold ``default``
for some of its cases (``--runs default``). Prints (and writes) one Markdown row per case of the NEW files, then the
mean, median and range of the change and how many cases miss the issue's two goals (within 0.3 dB of ``truth``; at
most 0.1 dB under ``today``) before and after.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _key(row: dict) -> tuple:
    return row["texture"], row["kernel"], tuple(row["shift"])


def compare(old: dict, new_rows: list[dict]) -> str:
    base = {_key(r): r for r in old["rows"]}
    lines = [
        "| texture | kernel | shift | old default | new default | change | new - truth (old) | new - today (old) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    changes, misses = [], {"truth": [0, 0], "today": [0, 0]}
    for row in new_rows:
        was = base[_key(row)]
        change = row["default"] - was["default"]
        changes.append(change)
        gaps = {}
        for name, limit in (("truth", -0.3), ("today", -0.1)):
            gaps[name] = (row["default"] - was[name], was["default"] - was[name])
            misses[name][0] += gaps[name][1] < limit
            misses[name][1] += gaps[name][0] < limit
        shift = ", ".join(f"{v:+d}" for v in row["shift"])
        lines.append(
            f"| {row['texture']} | {row['kernel']} | {shift} | {was['default']:.2f} | {row['default']:.2f} | "
            f"{change:+.2f} | {gaps['truth'][0]:+.2f} ({gaps['truth'][1]:+.2f}) | "
            f"{gaps['today'][0]:+.2f} ({gaps['today'][1]:+.2f}) |"
        )
    lines += [
        "",
        f"{len(changes)} cases: change mean {statistics.mean(changes):+.3f} dB, "
        f"median {statistics.median(changes):+.3f}, from {min(changes):+.2f} to {max(changes):+.2f}. "
        f"More than 0.3 dB under the truth: {misses['truth'][0]} "
        f"before, {misses['truth'][1]} after; more than 0.1 dB under today: {misses['today'][0]} before, "
        f"{misses['today'][1]} after.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = [row for path in args.new for row in json.loads(path.read_text())["rows"]]
    text = compare(json.loads(args.old.read_text()), rows)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
