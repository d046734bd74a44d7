"""What the streamed COG overviews cost the I/O thread: ``average_2x2`` on one full-width strip.

Usage::

    python benchmarks/overview_average.py --runs 5

A 256-row strip as wide as a full tile (256 x 10980 x 6, the rows ``infer``'s writer hands over at a time), of
uniform random DN with an 800 px no-data edge, in float32 (NaN nodata) and uint16 (0 nodata); the median seconds
per strip and per full tile (10980 / 256 strips) go to ``benchmarks/results/overview_average.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TILE_SIDE = 10980
ROWS = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--note", default="", help="A line about the conditions.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    import numpy as np

    from ssc_edge.io.cog import average_2x2
    from ssc_edge.train.report import machine_info

    rng = np.random.default_rng(0)
    strip = rng.uniform(1, 6000, (ROWS, TILE_SIDE, 6)).astype(np.float32)
    strip[:, :800] = np.nan
    cases = {"float32": (strip, np.nan), "uint16": (np.where(np.isnan(strip), 0, np.rint(strip)).astype("uint16"), 0)}
    result: dict = {
        "command": " ".join(["python benchmarks/overview_average.py", *(sys.argv[1:] if argv is None else argv)]),
        "note": args.note,
        "machine": machine_info(),
        "load_average_start": [round(v, 1) for v in os.getloadavg()],
        "strip": [ROWS, TILE_SIDE, 6],
        "dtypes": {},
    }
    for dtype, (values, nodata) in cases.items():
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            average_2x2(values, nodata)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        result["dtypes"][dtype] = {"runs": [round(s, 4) for s in seconds], "median_seconds_per_strip": round(median, 4),
                                   "seconds_per_full_tile": round(median * TILE_SIDE / ROWS, 2)}  # fmt: skip
    result["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    lines = ["# average_2x2 on a full-width strip", "", f"`{result['command']}`", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; load "
             f"{result['load_average_start']} -> {result['load_average_end']}. {args.note}", "",
             "| dtype | median s per 256 x 10980 x 6 strip | s per full tile |", "|---|---:|---:|"]  # fmt: skip
    for dtype, row in result["dtypes"].items():
        lines.append(f"| {dtype} | {row['median_seconds_per_strip']} | {row['seconds_per_full_tile']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overview_average.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "overview_average.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
