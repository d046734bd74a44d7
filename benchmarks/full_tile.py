"""A full Sentinel-2 tile, measured: ``fit-and-export`` and ``infer`` on a 10980 x 10980 band folder.

Usage (a quiet machine; the full size takes the machine for about half an hour on 2 cores)::

    python benchmarks/full_tile.py                                 # 10980 x 10980, default settings
    python benchmarks/full_tile.py --size 2048 --epochs 5          # quick development run
    python benchmarks/full_tile.py --label bf16 --skip-fit --model DIR/model.onnx --infer-args "--precision bf16"
    python benchmarks/full_tile.py --sixty --block 1020                # the 12-band product (--bands all)

Steps and what is recorded (``benchmarks/results/full_tile_<label>.{json,md}``, with the machine):

1. **generate**: a folder of single-band GeoTIFFs named as in a SAFE granule (``T31TDH_20260101T000000_B02.tif``
   ...; tiled 512 x 512, DEFLATE, uint16 DN, UTM georeferencing), written window by window from
   ``benchmarks/_mosaic.py``: the real scenes of ``../shared/data`` mirrored and tiled in 1024 px squares, with
   a no-data wedge (0 DN in every band) over the lower-left corner as on edge-of-swath tiles.
2. **fit-and-export** (the ``ssc-edge`` command, default settings unless ``--epochs``/``--patches``/
   ``--fit-args``): wall time and peak RSS of the process; its report's phases (read, estimate, fit, evaluate,
   export, full_resolution, precision_gate), patches drawn and offered, windows, and the report's scores.
3. **infer** (``ssc-edge infer MODEL FOLDER -o OUT.tif -v`` plus ``--infer-args``): wall time and peak RSS;
   from its log, the time spent reading and building window inputs, in the network and writing (read and
   write run in an I/O thread overlapped with the network); GFLOP/s against the compute floor (FLOPs per
   10 m pixel counted from the graph on a ``--tile`` window, times the scene's pixels, over the wall time) and
   the network's own GFLOP/s (every window's FLOPs, overlap included, over the network time).
4. **bare session**: the network alone on one ``--tile`` window of the scene, in the runtime's onnxruntime
   session (median of 5 runs after a warm-up): the throughput ``infer`` is held against (target 80 %).

With ``--sixty`` the folder also has B01 and B09 at 60 m (the mosaic of the three real scenes with real 60 m
bands; ``--block`` a multiple of 6), ``fit-and-export`` runs with ``--bands all`` (its 60 m report is recorded
too) and ``infer`` writes the 12-band product (``--model-60m NAME_60m.onnx --with-fine``); the bare session
is then both networks on the same window, one after the other.

Peak RSS is ``ru_maxrss`` of each child process (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
SIXTY = ("B01", "B09")  # ssc_edge.bands.VERY_COARSE_BANDS (imported lazily, as everything of ssc_edge here)
_TIMINGS = re.compile(r"(\d+) tiles in ([\d.]+) s: network ([\d.]+) s, read and input ([\d.]+) s, write ([\d.]+) s")
_SKIPPED = re.compile(r"(\d+) of (\d+) windows entirely no-data")  # Sharpener.sharpen_windows's -v line
_COG = re.compile(r"cloud-optimized \S+ in ([\d.]+) s")  # ssc_edge.io.cog's -v line: the COG step after the windows


def engine_timings(log_text: str) -> dict | None:
    """The engine's ``-v`` timing line of an ``infer`` log, s (the largest run: a bf16 gate logs its own, smaller
    one): ``tiles``, ``engine`` (its wall), ``network``, ``read``, ``write``; None without one."""
    matches = list(_TIMINGS.finditer(log_text))
    if not matches:
        return None
    tiles, wall, network, read, write = (float(g) for g in max(matches, key=lambda m: int(m.group(1))).groups())
    skipped = [int(m.group(1)) for m in _SKIPPED.finditer(log_text) if int(m.group(2)) == int(tiles)]
    return {"tiles": int(tiles), "engine": wall, "network": network, "read": read, "write": write,
            "skipped": skipped[0] if skipped else 0}  # fmt: skip


def cog_seconds(log_text: str) -> float | None:
    """The COG step's seconds in an ``infer -v`` log (None: ``--no-cog``)."""
    match = _COG.search(log_text)
    return float(match.group(1)) if match else None


def write_scene(folder: Path, size: int, *, block: int, wedge: float, sixty: bool = False, strip: int = 1020) -> float:
    """Write the band folder window by window (``sixty``: with B01, B09); return the seconds it took."""
    import numpy as np
    import rasterio
    from _mosaic import MosaicSource
    from rasterio.transform import from_origin

    from ssc_edge.bandset import band_ratio
    from ssc_edge.tiling import Tile

    start = time.perf_counter()
    mosaic = MosaicSource(size, block=block, wedge=wedge, sixty=sixty)
    folder.mkdir(parents=True, exist_ok=True)
    for band in BANDS + (SIXTY if sixty else ()):
        factor = band_ratio(band)
        n = size // factor
        profile = {
            "driver": "GTiff",
            "height": n,
            "width": n,
            "count": 1,
            "dtype": "uint16",
            "crs": "EPSG:32631",
            "transform": from_origin(399960.0, 4900020.0, 10.0 * factor, 10.0 * factor),
            "tiled": True,
            "blockxsize": 512 if n > 512 else 256,
            "blockysize": 512 if n > 512 else 256,
            "compress": "deflate",
            "predictor": 2,
            "BIGTIFF": "IF_SAFER",
        }
        path = folder / f"T31TDH_20260101T000000_{band}.tif"
        with rasterio.open(path, "w", **profile) as out:
            rows = strip // factor
            for row in range(0, n, rows):
                tile = Tile(row, 0, min(rows, n - row), n)
                values = np.clip(np.rint(mosaic.read(band, tile)), 0, 65535).astype(np.uint16)
                out.write(values, 1, window=((row, row + tile.height), (0, n)))
    return time.perf_counter() - start


def run_child(command: list[str], log: Path) -> dict:
    """Run a command; wall time, peak RSS (MiB) and exit code; stderr and stdout into ``log``."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "command": " ".join(shlex.quote(c) for c in command),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "exit_code": process.returncode,
    }


def bare_session(
    models: list[Path], folder: Path, *, tile: int, provider: str, precision: str | None = None, repeats: int = 5
) -> dict:
    """The networks alone on one ``tile`` window of the scene (its centre), in the runtime's session; with two
    models, both run on the window one after the other (one timed repeat = both)."""
    import numpy as np

    from ssc_edge.io.sources import open_band_source
    from ssc_edge.runtime import Sharpener
    from ssc_edge.runtime.sharpen import window_input
    from ssc_edge.tiling import Tile

    # the runtime's own sessions, in the precision infer ran in (its --precision), so the ratio compares like with
    # like; on a static-shape provider (OpenVINO) the network compiled for the window's shape, as infer runs it
    sharpeners = [Sharpener(m, provider=provider, precision=precision, tile=tile, memory_pattern=False) for m in models]
    with open_band_source(folder) as source:
        h, w = source.shape
        window = Tile((h - tile) // 2 // 2 * 2, (w - tile) // 2 // 2 * 2, min(tile, h), min(tile, w))
        inputs = [window_input(source.read, window, (h, w), s.contract)[None] for s in sharpeners]
    loaded = [s._model_for(x.shape[:3]) for s, x in zip(sharpeners, inputs, strict=True)]
    for m, x in zip(loaded, inputs, strict=True):
        m.run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for m, x in zip(loaded, inputs, strict=True):
            m.run(x)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {
        "provider": loaded[0].provider,
        "precision": loaded[0].precision,
        "models": len(loaded),
        "tile": tile,
        "median_seconds": round(seconds, 3),
        "megapixels_per_second": round(window.height * window.width / seconds / 1e6, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="Side of the 10 m grid, pixels.")
    parser.add_argument("--block", type=int, default=1024, help="Side of the texture squares, 10 m pixels.")
    parser.add_argument("--wedge", type=float, default=0.25, help="No-data wedge, fraction of the side.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ssc-edge-full-tile"), help="Scratch folder.")
    parser.add_argument("--epochs", type=int, help="fit-and-export --epochs (default: its own).")
    parser.add_argument("--patches", type=int, help="fit-and-export --patches (default: its own).")
    parser.add_argument("--fit-args", default="", help="More fit-and-export options, one string.")
    parser.add_argument("--infer-args", default="", help="More infer options (e.g. '--precision bf16').")
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--skip-fit", action="store_true", help="Use --model instead of fitting.")
    parser.add_argument("--model", type=Path, help="Model for --skip-fit.")
    parser.add_argument("--skip-infer", action="store_true")
    parser.add_argument("--sixty", action="store_true", help="Add B01/B09; fit --bands all; 12-band infer.")
    parser.add_argument("--label", default=None, help="Result name (default: the size).")
    parser.add_argument("--note", default="", help="A line about the conditions (e.g. 'shared machine').")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    args = parser.parse_args(argv)

    from ssc_edge.runtime.flops import count_flops
    from ssc_edge.train.bandsets import sixty_output_path
    from ssc_edge.train.report import machine_info

    exe = shutil.which("ssc-edge", path=str(Path(sys.executable).parent)) or "ssc-edge"
    label = args.label or (f"{args.size}_all" if args.sixty else str(args.size))
    folder = args.work / (f"S2_mosaic60_{args.size}_{args.block}" if args.sixty else f"S2_mosaic_{args.size}")
    bands = BANDS + (SIXTY if args.sixty else ())
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict = {"size": args.size, "wedge": args.wedge, "block": args.block, "note": args.note}
    result["bands"] = list(bands)
    result["command"] = ("python benchmarks/full_tile.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    result["machine"] = machine_info()
    result["load_average_start"] = [round(v, 1) for v in os.getloadavg()]
    if not all((folder / f"T31TDH_20260101T000000_{b}.tif").is_file() for b in bands):
        seconds = write_scene(folder, args.size, block=args.block, wedge=args.wedge, sixty=args.sixty)
        result["generate_seconds"] = round(seconds, 1)
    print(json.dumps({"generate_seconds": result.get("generate_seconds", "reused")}), flush=True)

    model = args.model or args.work / "model.onnx"
    model60 = sixty_output_path(model) if args.sixty else None
    if not args.skip_fit:
        command = [exe, "fit-and-export", str(folder), "-o", str(model), "--force"]
        if args.sixty:
            command += ["--bands", "all"]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        if args.patches:
            command += ["--patches", str(args.patches)]
        command += shlex.split(args.fit_args)
        fit = run_child(command, args.work / "fit.log")
        if fit["exit_code"] == 0:
            report = json.loads(model.with_suffix(".json").read_text())
            fit.update(
                phases_seconds=report.get("phases_seconds", {}),
                patches=report["fit"]["patches"],
                patch_candidates=report["fit"].get("patch_candidates"),
                patch_windows=report["fit"].get("patch_windows"),
                epochs=report["fit"]["epochs"],
                evaluation={
                    k: report["evaluation"].get(k) for k in ("kind", "pixels", "sampled", "windows", "patches")
                },
                mean_sre=round(report["evaluation"]["model"]["mean_sre"], 3),
                bicubic_mean_sre=round(report["evaluation"]["bicubic"]["mean_sre"], 3),
                layout=report["export"]["layout"],
            )
            if model60 is not None and model60.with_suffix(".json").is_file():
                fit["sixty"] = _sixty_summary(json.loads(model60.with_suffix(".json").read_text()))
                # the 60 m report has no phases: its fit, evaluation and export are what the 20 m ones leave
                twenty = sum(v for k, v in fit["phases_seconds"].items() if k != "stage")  # the stage is in "fit"
                fit["sixty"]["seconds_besides_20m_phases"] = round(fit["seconds"] - twenty, 1)
        else:
            fit["log_tail"] = (args.work / "fit.log").read_text()[-2000:]
        result["fit_and_export"] = fit
        print(json.dumps(fit), flush=True)
    if not args.skip_infer and model.is_file():
        output = args.work / "sharpened.tif"
        command = [exe, "infer", str(model), str(folder), "-o", str(output), "--force", "-v", "--tile", str(args.tile)]
        command += ["--provider", args.provider, *shlex.split(args.infer_args)]
        if model60 is not None:
            command += ["--model-60m", str(model60), "--with-fine"]
        infer = run_child(command, args.work / "infer.log")
        log_text = (args.work / "infer.log").read_text()
        timings = engine_timings(log_text)
        if timings:
            infer.update(tiles=timings["tiles"], engine_seconds=timings["engine"])
            infer.update({f"{key}_seconds": timings[key] for key in ("network", "read", "write")})
        infer["cog_seconds"] = cog_seconds(log_text)  # None: --no-cog in --infer-args
        if infer["exit_code"] != 0:
            infer["log_tail"] = (args.work / "infer.log").read_text()[-2000:]
        models = [model] + ([model60] if model60 is not None else [])
        counts = [count_flops(m, height=args.tile, width=args.tile) for m in models]
        per_pixel, total = sum(c.per_pixel for c in counts), sum(c.total for c in counts)
        pixels = args.size * args.size
        infer["flops_per_pixel"] = round(per_pixel)
        infer["gflops_floor_per_second"] = round(per_pixel * pixels / infer["seconds"] / 1e9, 1)
        if timings:
            # the product's windows carry the larger halo; this counts each network on a tile-sized window, and
            # only the windows it ran on (a window whose core is all no-data is written without the network)
            ran = timings["tiles"] - (timings["skipped"] or 0)
            infer["skipped_windows"] = timings["skipped"]
            infer["network_gflops_per_second"] = round(total * ran / timings["network"] / 1e9, 1)
        infer["megapixels_per_second"] = round(pixels / infer["seconds"] / 1e6, 4)
        if infer["exit_code"] == 0:
            infer["output_bands"] = _band_descriptions(output)
        precision = _precision(args.infer_args)
        bare = bare_session(models, folder, tile=args.tile, provider=args.provider, precision=precision)
        infer["bare_session"] = bare
        infer["fraction_of_bare"] = round(infer["megapixels_per_second"] / bare["megapixels_per_second"], 3)
        result["infer"] = infer
        print(json.dumps(infer), flush=True)
    result["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"full_tile_{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"full_tile_{label}.md").write_text(render(result))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _precision(infer_args: str) -> str | None:
    """The ``--precision`` of the infer options, if a fixed one (``auto`` and none: the model's own)."""
    words = shlex.split(infer_args)
    value = words[words.index("--precision") + 1] if "--precision" in words[:-1] else None
    return None if value in (None, "auto") else value


def _sixty_summary(report: dict) -> dict:
    """The 60 m model's report, in brief: scores, the pair's estimate, the fit's size."""
    evaluation = report.get("evaluation", {})
    summary = {
        "patches": report.get("fit", {}).get("patches"),
        "epochs": report.get("fit", {}).get("epochs"),
        "phases_seconds": report.get("phases_seconds", {}),
        "evaluation_kind": evaluation.get("kind"),
        "mean_sre": evaluation.get("model", {}).get("mean_sre"),
        "bicubic_mean_sre": evaluation.get("bicubic", {}).get("mean_sre"),
        "sre": evaluation.get("model", {}).get("sre"),
        "bicubic_sre": evaluation.get("bicubic", {}).get("sre"),
    }
    for key in ("estimate", "estimate_20m", "pair_model", "notes"):
        if key in report:
            summary[key] = report[key]
    return summary


def _band_descriptions(path: Path) -> list:
    import rasterio

    with rasterio.open(path) as dataset:
        return [dataset.count, list(dataset.descriptions), dataset.dtypes[0], str(dataset.crs)]


def _evaluation_text(evaluation: dict) -> str:
    sample = "a sample of windows" if evaluation.get("sampled") else "the whole grid"
    second = f", second fit {evaluation.get('patches')} patches" if evaluation.get("kind") == "one-scale-down" else ""
    return f"{evaluation.get('kind')}, {evaluation.get('pixels')} px scored ({sample}){second}"


def render(result: dict) -> str:
    """Markdown table of one run."""
    lines = [
        f"# Full tile, {result['size']} x {result['size']} band folder (GeoTIFF)\n",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores. {result['note']} "
        f"Load average (1, 5, 15 min) at start {result.get('load_average_start')}, "
        f"at end {result.get('load_average_end')}.\n",
        "| phase | wall (s) | peak RSS (MiB) | notes |",
        "|---|---|---|---|",
        f"| generate (not timed as a user step) | {result.get('generate_seconds', 'reused')} | | |",
    ]
    fit = result.get("fit_and_export")
    if fit:
        phases = fit.get("phases_seconds", {})
        lines.append(
            f"| fit-and-export (total) | {fit['seconds']} | {fit['peak_rss_mib']} | exit {fit['exit_code']}; "
            f"{fit.get('patches')} patches of {fit.get('patch_candidates')} from {fit.get('patch_windows')} windows, "
            f"{fit.get('epochs')} epochs; mean SRE {fit.get('mean_sre')} dB (bicubic {fit.get('bicubic_mean_sre')}) "
            f"[{_evaluation_text(fit.get('evaluation') or {})}] |"
        )
        for phase in ("read", "estimate", "fit", "stage", "evaluate", "export", "full_resolution", "precision_gate"):
            if phase in phases:
                lines.append(f"| - {phase} | {phases[phase]} | | |")
    infer = result.get("infer")
    if infer:
        bare = infer["bare_session"]
        lines.append(
            f"| infer (total) | {infer['seconds']} | {infer['peak_rss_mib']} | exit {infer['exit_code']}; "
            f"{infer.get('tiles')} tiles ({infer.get('skipped_windows') or 0} all no-data, network not run); "
            f"{infer['megapixels_per_second']} Mpx/s = {infer['fraction_of_bare']:.0%} "
            f"of one window in a bare session ({bare['megapixels_per_second']} Mpx/s); "
            f"{infer['gflops_floor_per_second']} GFLOP/s at the floor of {infer['flops_per_pixel'] / 1e6:.2f} "
            f"MFLOP/px; network {infer.get('network_gflops_per_second')} GFLOP/s |"
        )
        for phase in ("network", "read", "write"):
            if f"{phase}_seconds" in infer:
                overlapped = " (I/O thread, overlapped)" if phase != "network" else ""
                lines.append(f"| - {phase}{overlapped} | {infer[f'{phase}_seconds']} | | |")
        if infer.get("cog_seconds") is not None:
            lines.append(f"| - Cloud-Optimized GeoTIFF step (after the windows) | {infer['cog_seconds']} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
