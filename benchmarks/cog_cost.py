"""What the Cloud-Optimized GeoTIFF output costs: ``infer`` with and without ``--no-cog``, and the COG step's choices.

Usage (the lead runs ``--size 10980`` on a quiet machine; a development run)::

    python benchmarks/cog_cost.py --size 2048 --note "shared machine"

Steps and what is recorded (``benchmarks/results/cog_cost_<size>.{json,md}``, with the machine and load):

1. **generate**: the band folder of ``benchmarks/full_tile.py`` (real scenes mirrored in 1024 px squares, a
   no-data wedge), ``--size`` x ``--size`` px at 10 m.
2. **infer**: ``ssc-edge infer MODEL FOLDER -o OUT.tif -v --no-quality`` (default: the shipped demo model, fp32),
   ``--repeats`` times with the COG output (the default) and with ``--no-cog``, alternating: wall time, peak RSS
   (``ru_maxrss`` of the child), output size, and the COG step's own seconds (its ``-v`` log line).
3. **temporary file**: the streamed product goes into a plain GeoTIFF that the COG step re-reads. Both ways of
   writing it, timed in this process on the ``--no-cog`` product's pixels written in 256-row strips as the
   streamed writer does: uncompressed (what ssc-edge does) and DEFLATE level 1 + predictor (the plain
   output's own settings), each followed by the COG step from it.
4. **options**: the COG step from the uncompressed file with 256 and 512 px tiles, DEFLATE level 1 and 6.
5. **memory**: RSS of a child process that only runs the COG step (``cloud_optimize``, 64 MiB GDAL cache), before
   the step and its peak during it (sampled every 5 ms), on the uncompressed product, on a 2 x 2 mosaic of it (4 x
   the area) and on a strip of it as wide as a full tile (10980 px): what grows with the area or the width.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from full_tile import cog_seconds, run_child, write_scene

REPO = Path(__file__).resolve().parents[1]
FULL_TILE = 10980  # side of a Sentinel-2 tile at 10 m, pixels


def _infer(exe: str, model: Path, folder: Path, output: Path, log: Path, *, cog: bool, extra: list[str]) -> dict:
    command = [exe, "infer", str(model), str(folder), "-o", str(output), "--force", "-v", "--no-quality"]
    command += extra + ([] if cog else ["--no-cog"])
    run = run_child(command, log)
    text = log.read_text()
    run["cog_seconds"] = cog_seconds(text)
    run["bytes"] = output.stat().st_size if output.is_file() else None
    if run["exit_code"] != 0:
        run["log_tail"] = text[-2000:]
    return run


def _write_plain(path: Path, data, profile: dict, *, compressed: bool) -> float:
    """Write (B, H, W) ``data`` in 256-row strips (as the streamed writer); seconds."""
    import rasterio

    profile = {**profile, "compress": "deflate", "zlevel": 1, "predictor": 3} if compressed else dict(profile)
    start = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=64 * 1024 * 1024), rasterio.open(path, "w", **profile) as out:
        for row in range(0, data.shape[1], 256):
            out.write(data[:, row : row + 256], window=((row, min(row + 256, data.shape[1])), (0, data.shape[2])))
    return time.perf_counter() - start


def _cog_seconds(source: Path, destination: Path, **options) -> tuple[float, int]:
    from ssc_edge.io.cog import cloud_optimize

    result = cloud_optimize(source, destination, **options)
    return result.seconds, result.bytes


_MEMORY_CHILD = """
import json, resource, sys, threading, time
from pathlib import Path
import rasterio, rasterio.shutil
from ssc_edge.io.cog import cloud_optimize

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

before, peak, done = rss_mib(), [0.0], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mib())
        time.sleep(0.005)

thread = threading.Thread(target=sample)
thread.start()
result = cloud_optimize(Path(sys.argv[1]), Path(sys.argv[2]))
done.set()
thread.join()
print(json.dumps({"rss_before_mib": round(before), "rss_peak_during_mib": round(max(peak[0], rss_mib())),
                  "seconds": round(result.seconds, 2)}))
"""


def _cog_child_rss(source: Path, destination: Path, log: Path) -> dict:
    """The COG step alone in a child process: its RSS before the step (imports done) and the peak during it
    (sampled every 5 ms), and the child's ``ru_maxrss``."""
    run = run_child([sys.executable, "-c", _MEMORY_CHILD, str(source), str(destination)], log)
    run["command"] = f"python -c <_MEMORY_CHILD of benchmarks/cog_cost.py> {source.name} {destination.name}"
    if run["exit_code"] == 0:
        run.update(json.loads(log.read_text().strip().splitlines()[-1]))
    run["source_bytes"] = source.stat().st_size
    return run


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="Side of the 10 m grid, pixels.")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "demo.onnx")
    parser.add_argument("--infer-args", default="--precision fp32 --provider cpu", help="More infer options.")
    parser.add_argument("--repeats", type=int, default=3, help="infer runs with and without the COG output, each.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ssc-edge-cog-cost"), help="Scratch folder.")
    parser.add_argument("--note", default="", help="A line about the conditions (e.g. 'shared machine').")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    args = parser.parse_args(argv)

    import shlex

    import rasterio

    from ssc_edge.train.report import machine_info

    exe = shutil.which("ssc-edge", path=str(Path(sys.executable).parent)) or "ssc-edge"
    work = args.work
    folder = work / f"S2_mosaic_{args.size}"
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"size": args.size, "note": args.note, "model": str(args.model)}
    result["command"] = ("python benchmarks/cog_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    result["machine"] = machine_info()
    result["load_average_start"] = [round(v, 1) for v in os.getloadavg()]
    if not (folder / "T31TDH_20260101T000000_B12.tif").is_file():
        write_scene(folder, args.size, block=1024, wedge=0.25)

    extra = shlex.split(args.infer_args)
    runs: dict[str, list[dict]] = {"cog": [], "no_cog": []}
    for _ in range(args.repeats):
        for name in ("no_cog", "cog"):
            output = work / f"{name}.tif"
            run = _infer(exe, args.model, folder, output, work / f"{name}.log", cog=name == "cog", extra=extra)
            runs[name].append(run)
            print(json.dumps({name: run}), flush=True)
    result["infer"] = {
        name: {
            "runs": found,
            "median_seconds": _median(found, "seconds"),
            "median_peak_rss_mib": _median(found, "peak_rss_mib"),
            "median_cog_seconds": _median(found, "cog_seconds"),
            "bytes": found[-1]["bytes"],
        }
        for name, found in runs.items()
    }

    with rasterio.open(work / "no_cog.tif") as plain:
        data = plain.read()
        profile = {
            "driver": "GTiff",
            "height": plain.height,
            "width": plain.width,
            "count": plain.count,
            "dtype": plain.dtypes[0],
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "interleave": "band",
            "BIGTIFF": "IF_SAFER",
            "nodata": plain.nodata,
            "crs": plain.crs,
            "transform": plain.transform,
        }
    temporary = {}
    for name, compressed in (("uncompressed", False), ("deflate1", True)):
        times = []
        for _ in range(args.repeats):
            write = _write_plain(work / f"plain_{name}.tif", data, profile, compressed=compressed)
            cog, _ = _cog_seconds(work / f"plain_{name}.tif", work / f"cog_from_{name}.tif")
            times.append({"write": round(write, 2), "cog": round(cog, 2), "total": round(write + cog, 2)})
        temporary[name] = {
            "runs": times,
            "median_total_seconds": round(statistics.median(t["total"] for t in times), 2),
            "bytes": (work / f"plain_{name}.tif").stat().st_size,
        }
    result["temporary_file"] = temporary
    print(json.dumps(temporary), flush=True)

    options = {}
    for blocksize in (256, 512):
        for level in (1, 6):
            seconds = [
                _cog_seconds(work / "plain_uncompressed.tif", work / "cog_option.tif", blocksize=blocksize, level=level)
                for _ in range(args.repeats)
            ]
            options[f"{blocksize}px_level{level}"] = {
                "median_seconds": round(statistics.median(s for s, _ in seconds), 2),
                "bytes": seconds[-1][1],
            }
    result["options"] = options
    print(json.dumps(options), flush=True)

    h, w = data.shape[1:]
    sources = {f"{args.size} x {args.size}": work / "plain_uncompressed.tif"}
    # 4 x the area (a 2 x 2 mosaic), and a strip as wide as a full tile (memory that grows with the width)
    for name, rows, columns in ((f"{2 * h} x {2 * w}", 2 * h, 2 * w), (f"{h} x {FULL_TILE}", h, FULL_TILE)):
        path = work / f"plain_{rows}x{columns}.tif"
        with rasterio.open(path, "w", **{**profile, "height": rows, "width": columns}) as out:
            for row in range(0, rows, h):
                for column in range(0, columns, w):
                    part = data[:, : min(h, rows - row), : min(w, columns - column)]
                    out.write(part, window=((row, row + part.shape[1]), (column, column + part.shape[2])))
        sources[name] = path
    del data
    result["memory"] = {
        name: _cog_child_rss(path, work / "cog_mem.tif", work / "mem.log") for name, path in sources.items()
    }
    print(json.dumps(result["memory"]), flush=True)
    result["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"cog_cost_{args.size}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"cog_cost_{args.size}.md").write_text(render(result))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render(result: dict) -> str:
    """Markdown tables of one run."""
    size = result["size"]
    infer = result["infer"]
    cog, plain = infer["cog"], infer["no_cog"]
    mib = 1024 * 1024
    lines = [
        f"# Cloud-Optimized GeoTIFF cost, {size} x {size} px six-band float32 product\n",
        f"Command: `{result['command']}`  ",
        f"Model: `{Path(result['model']).name}`. Machine: {result['machine']['cpu']}, {result['machine']['cores']} "
        f"cores. {result['note']} Load average (1, 5, 15 min) at start {result['load_average_start']}, at end "
        f"{result['load_average_end']}.\n",
        "## infer, medians of the runs",
        "",
        "| output | wall (s) | COG step (s) | peak RSS (MiB) | size (MiB) |",
        "|---|---|---|---|---|",
        f"| COG (default) | {cog['median_seconds']} | {cog['median_cog_seconds']} | {cog['median_peak_rss_mib']} | "
        f"{cog['bytes'] / mib:.1f} |",
        f"| plain GeoTIFF (`--no-cog`) | {plain['median_seconds']} | - | {plain['median_peak_rss_mib']} | "
        f"{plain['bytes'] / mib:.1f} |",
        "",
        "## The temporary file the COG step re-reads (write in 256-row strips + COG step), medians",
        "",
        "| temporary file | write (s) | COG step (s) | total (s) | temporary size (MiB) |",
        "|---|---|---|---|---|",
    ]
    for name, found in result["temporary_file"].items():
        write = statistics.median(r["write"] for r in found["runs"])
        step = statistics.median(r["cog"] for r in found["runs"])
        lines.append(
            f"| {name} | {write:.2f} | {step:.2f} | {found['median_total_seconds']} | {found['bytes'] / mib:.1f} |"
        )
    lines += ["", "## COG options (from the uncompressed file), medians", "", "| tiles, DEFLATE level | COG step (s) | "
              "size (MiB) |", "|---|---|---|"]  # fmt: skip
    for name, found in result["options"].items():
        lines.append(f"| {name.replace('_', ', ')} | {found['median_seconds']} | {found['bytes'] / mib:.1f} |")
    lines += ["", "## Memory of the COG step alone (child process, 64 MiB GDAL cache)", "",
              "| source | source size (MiB) | RSS before the step (MiB) | peak RSS during it (MiB) | step (s) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, found in result["memory"].items():
        lines.append(
            f"| {name} px | {found['source_bytes'] / mib:.0f} | {found.get('rss_before_mib')} | "
            f"{found.get('rss_peak_during_mib')} | {found.get('seconds')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
