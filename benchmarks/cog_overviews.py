"""Where the Cloud-Optimized GeoTIFF step's time goes: GDAL COG driver options timed on one product.

Usage (on an idle machine)::

    ssc-edge infer MODEL FOLDER -o /tmp/cog/product.tif            # any sharpened product, e.g. 1024^2
    python benchmarks/cog_overviews.py --product /tmp/cog/product.tif --mosaic 4 --repeats 3

The product's pixels are tiled ``--mosaic`` x ``--mosaic`` times into an uncompressed 512 px tiled GeoTIFF (the
scratch file that ``infer``'s stream writes before its COG step), then GDAL's COG driver copies it with
ssc-edge's creation options (:func:`ssc_edge.io.cog.cog_creation_options`) and with one option changed at a
time: no overviews (what the overviews cost), nearest instead of average resampling (what the averaging
costs), uncompressed overviews, ZSTD, no predictor, one compression thread, multithreaded overview computation
(``GDAL_NUM_THREADS``) and a 512 MiB GDAL cache. Variants alternate within each repeat; medians of wall seconds
and the file size go to ``benchmarks/results/cog_overviews_<label>.{json,md}`` with the machine.
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

#: name -> (creation options changed, GDAL config options, GDAL cache MiB)
VARIANTS: dict[str, tuple[dict[str, str], dict[str, str], int]] = {
    "ssc-edge default": ({}, {}, 64),
    "no overviews": ({"OVERVIEWS": "NONE"}, {}, 64),
    "nearest overviews": ({"RESAMPLING": "NEAREST"}, {}, 64),
    "uncompressed overviews": ({"OVERVIEW_COMPRESS": "NONE"}, {}, 64),
    "ZSTD level 1": ({"COMPRESS": "ZSTD"}, {}, 64),
    "no predictor": ({"PREDICTOR": "NO"}, {}, 64),
    "1 compression thread": ({"NUM_THREADS": "1"}, {}, 64),
    "GDAL_NUM_THREADS=ALL_CPUS": ({}, {"GDAL_NUM_THREADS": "ALL_CPUS"}, 64),
    "512 MiB cache": ({}, {}, 512),
}


def write_scratch(product: Path, scratch: Path, mosaic: int) -> tuple[int, int]:
    """Tile ``product``'s pixels ``mosaic`` x ``mosaic`` times into an uncompressed tiled GeoTIFF; its (H, W)."""
    import numpy as np
    import rasterio

    with rasterio.open(product) as src:
        data, nodata = src.read(), src.nodata
    big = np.tile(data, (1, mosaic, mosaic))
    profile = {"driver": "GTiff", "count": big.shape[0], "height": big.shape[1], "width": big.shape[2],
               "dtype": big.dtype, "tiled": True, "blockxsize": 512, "blockysize": 512, "interleave": "band",
               "BIGTIFF": "IF_SAFER", "nodata": nodata}  # fmt: skip
    with rasterio.open(scratch, "w", **profile) as out:
        out.write(big)
    return big.shape[1], big.shape[2]


def time_variant(scratch: Path, destination: Path, name: str) -> float:
    import rasterio
    import rasterio.shutil

    from ssc_edge.io.cog import cog_creation_options

    changed, config, cache_mib = VARIANTS[name]
    options = {**cog_creation_options(), **changed}
    start = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=cache_mib * 1024 * 1024, **config):
        rasterio.shutil.copy(scratch, destination, driver="COG", **options)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--product", type=Path, required=True, help="A sharpened product (GeoTIFF) to tile.")
    parser.add_argument("--mosaic", type=int, default=4, help="Tile the product this many times a side.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ssc-edge-cog-overviews"), help="Scratch folder.")
    parser.add_argument("--label", default="4096")
    parser.add_argument("--note", default="", help="A line about the conditions.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    from ssc_edge.train.report import machine_info

    args.work.mkdir(parents=True, exist_ok=True)
    scratch = args.work / "scratch.tif"
    shape = write_scratch(args.product, scratch, args.mosaic)
    result: dict = {
        "command": ("python benchmarks/cog_overviews.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip(),
        "note": args.note,
        "machine": machine_info(),
        "load_average_start": [round(v, 1) for v in os.getloadavg()],
        "scratch_shape": list(shape),
        "scratch_bytes": scratch.stat().st_size,
        "runs": {name: [] for name in VARIANTS},
    }
    for _ in range(args.repeats):
        for name in VARIANTS:
            destination = args.work / "cog.tif"
            seconds = time_variant(scratch, destination, name)
            result["runs"][name].append({"seconds": round(seconds, 2), "bytes": destination.stat().st_size})
            print(json.dumps({name: result["runs"][name][-1]}), flush=True)
    result["median_seconds"] = {n: round(statistics.median(r["seconds"] for r in runs), 2)
                                for n, runs in result["runs"].items()}  # fmt: skip
    result["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"cog_overviews_{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"cog_overviews_{args.label}.md").write_text(render(result))
    print(render(result))
    return 0


def render(result: dict) -> str:
    m = result["machine"]
    h, w = result["scratch_shape"]
    lines = [
        "# The COG step's options",
        "",
        f"`{result['command']}`",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; load {result['load_average_start']} -> "
        f"{result['load_average_end']}. {result['note']}",
        "",
        f"Scratch: {h} x {w} px, {result['scratch_bytes'] / 1e6:.0f} MB uncompressed. Median of the runs, s.",
        "",
        "| variant | COG step (s) | runs (s) | size (MB) |",
        "|---|---:|---|---:|",
    ]
    for name, runs in result["runs"].items():
        every = ", ".join(f"{r['seconds']}" for r in runs)
        lines.append(f"| {name} | {result['median_seconds'][name]} | {every} | {runs[-1]['bytes'] / 1e6:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
