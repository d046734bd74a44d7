"""Peak memory and wall time of streamed ``ssc-edge infer`` on synthetic GeoTIFF scenes of growing size.

Usage (CPU quiet, nothing else running)::

    python benchmarks/infer_memory.py                          # 2048^2 and 10980^2 (a full Sentinel-2 tile)
    python benchmarks/infer_memory.py --sizes 2048             # the quick case only
    python benchmarks/infer_memory.py --model models/demo.onnx --tile 512

Each scene is a folder of two GeoTIFFs (10 m: B02 B03 B04 B08; 20 m: B05 B06 B07 B8A B11 B12, uint16,
UTM 27N) written strip by strip, so the builder itself needs memory for one strip only. The scene is
cached in ``--work`` and reused. ``ssc-edge infer MODEL SCENE -o OUT.tif --provider cpu`` then runs in a
child process; its peak resident set size comes from ``wait4`` (``ru_maxrss``), its wall time from the
clock around it. Without ``--model`` a small SSC-CNN-shaped test model is built (width ``--width``; needs
the ``onnx`` package): the memory bound is a property of the tiling, the width only changes the time.

``--format safe`` builds a Sentinel-2 L2A SAFE product instead: the real product metadata of
``../shared/data/real/safe_metadata/S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454`` (baseline
04.00, ``BOA_ADD_OFFSET`` -1000) with the same texture + 1000 DN written as lossless JPEG 2000 at the paths the
metadata names, so ``infer`` streams it through the SAFE reader (``ssc_edge.io.sources``). Writing JPEG 2000 goes
through GDAL's CreateCopy (one band in memory in the builder) and is slow: use it for sizes up to a few thousand
pixels.

Writes ``benchmarks/results/infer_memory.{json,md}`` (``infer_memory_safe.{json,md}`` for ``--format safe``) with
the machine and the exact commands.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FINE = ("B02", "B03", "B04", "B08")
COARSE = ("B05", "B06", "B07", "B8A", "B11", "B12")
STRIP = 512


def _texture(rows: np.ndarray, cols: np.ndarray, band: int, pixel: float) -> np.ndarray:
    """Deterministic field-like texture in DN at 10 m coordinates (rows, cols), any window."""
    y, x = np.meshgrid(rows * pixel / 10, cols * pixel / 10, indexing="ij")
    fields = np.sin(x / 37.0 + band) * np.cos(y / 53.0) + 0.5 * np.sin((x + y) / 7.0 + 0.3 * band)
    parcels = ((x // 61 + y // 47) % 3) * 0.4
    return 1500 + 900 * fields + 700 * parcels + 60 * band


def build_scene(folder: Path, size: int) -> Path:
    """Write a size x size 10 m scene (and its size/2 20 m bands) strip by strip; return the folder."""
    import rasterio
    from rasterio.transform import Affine

    done = folder / "complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    transform = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 7200000.0)
    for name, bands, n, pixel in (("T27WVM_10m.tif", FINE, size, 10.0), ("T27WVM_20m.tif", COARSE, size // 2, 20.0)):
        profile = {
            "driver": "GTiff",
            "height": n,
            "width": n,
            "count": len(bands),
            "dtype": "uint16",
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "predictor": 2,
            "BIGTIFF": "IF_SAFER",
            "crs": "EPSG:32627",
            "transform": transform * Affine.scale(pixel / 10.0),
        }
        with rasterio.Env(GDAL_CACHEMAX=256 * 1024 * 1024), rasterio.open(folder / name, "w", **profile) as dst:
            for i, band in enumerate(bands, start=1):
                dst.set_band_description(i, band)
            cols = np.arange(n, dtype=np.float64)
            for start in range(0, n, STRIP):
                rows = np.arange(start, min(start + STRIP, n), dtype=np.float64)
                strip = np.stack(
                    [_texture(rows, cols, FINE.index(b) if b in FINE else 4 + COARSE.index(b), pixel) for b in bands]
                )
                window = ((start, start + len(rows)), (0, n))
                dst.write(np.clip(strip, 0, 65535).astype(np.uint16), window=window)
    done.write_text("ok\n")
    return folder


SAFE_PRODUCT = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"
SAFE_METADATA = REPO.parent / "shared" / "data" / "real" / "safe_metadata" / SAFE_PRODUCT


def build_safe(folder: Path, size: int) -> Path:
    """Write a size x size L2A SAFE product from the real metadata and the texture (+1000 DN); return it."""
    import re
    import shutil

    import rasterio
    from rasterio.transform import Affine

    product = folder / f"{SAFE_PRODUCT}.SAFE"
    done = folder / "complete"
    if done.is_file():
        return product
    product.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAFE_METADATA / "MTD_MSIL2A.xml", product / "MTD_MSIL2A.xml")
    entries = re.findall(r"<IMAGE_FILE>([^<]*)</IMAGE_FILE>", (SAFE_METADATA / "MTD_MSIL2A.xml").read_text())
    for band in FINE + COARSE:
        pixel = 10.0 if band in FINE else 20.0
        relative = next(e for e in entries if e.endswith(f"_{band}_{int(pixel)}m"))
        n = size if band in FINE else size // 2
        index = FINE.index(band) if band in FINE else 4 + COARSE.index(band)
        dn = np.empty((n, n), dtype=np.uint16)
        cols = np.arange(n, dtype=np.float64)
        for start in range(0, n, STRIP):
            rows = np.arange(start, min(start + STRIP, n), dtype=np.float64)
            dn[start : start + len(rows)] = np.clip(_texture(rows, cols, index, pixel) + 1000, 0, 65535)
        path = product / f"{relative}.jp2"
        path.parent.mkdir(parents=True, exist_ok=True)
        profile = dict(driver="JP2OpenJPEG", width=n, height=n, count=1, dtype="uint16", crs="EPSG:32629",
                       transform=Affine(pixel, 0.0, 399960.0, 0.0, -pixel, 5900040.0), QUALITY=100,
                       REVERSIBLE="YES", BLOCKXSIZE=1024, BLOCKYSIZE=1024)  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn, 1)
    done.write_text("ok\n")
    return product


def run_infer(command: list[str]) -> dict:
    """Run a command; return its wall time (s), peak RSS (MiB, from wait4) and exit status."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    stdout, stderr = child.stdout.read(), child.stderr.read()  # type: ignore[union-attr]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "exit_status": os.waitstatus_to_exitcode(status),
        "stdout": stdout.strip(),
        "stderr": stderr.strip()[-2000:],
    }


def machine() -> dict:
    import onnxruntime
    import rasterio

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "rasterio": rasterio.__version__,
    }
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 10980])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: a built test model)")
    parser.add_argument("--width", type=int, default=32, help="width of the built test model")
    parser.add_argument("--blocks", type=int, default=3, help="blocks of the built test model (halo 2 x blocks + 1)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=REPO / "build" / "infer_memory", help="scenes and outputs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--format", choices=("geotiff", "safe"), default="geotiff", help="scene format to stream")
    args = parser.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    model = args.model
    model_note = str(model)
    if model is None:
        sys.path.insert(0, str(REPO))
        from tests.runtime._models import write_model

        model = write_model(args.work / f"test_w{args.width}_b{args.blocks}.onnx", blocks=args.blocks, width=args.width)
        model_note = f"test model (tests/runtime/_models.py), {args.blocks} blocks, width {args.width}"
    exe = str(Path(sys.executable).parent / "ssc-edge")
    rows = []
    for size in args.sizes:
        t0 = time.perf_counter()
        if args.format == "safe":
            scene = build_safe(args.work / f"safe_{size}", size)
        else:
            scene = build_scene(args.work / f"scene_{size}", size)
        build_s = time.perf_counter() - t0
        out = args.work / f"out_{size}.tif"
        command = [
            exe,
            "infer",
            str(model),
            str(scene),
            "-o",
            str(out),
            "--provider",
            "cpu",
            "--tile",
            str(args.tile),
            "--force",
            "-q",
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        result = run_infer(command)
        row = {
            "size": size,
            "megapixels": round(size * size / 1e6, 2),
            "build_seconds": round(build_s, 1),
            "command": " ".join(command),
            **result,
        }
        row["seconds_per_megapixel"] = round(result["seconds"] / row["megapixels"], 3)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("stderr",)}), flush=True)
        out.unlink(missing_ok=True)
    report = {
        "benchmark": "infer_memory",
        "format": args.format,
        "model": model_note,
        "tile": args.tile,
        "machine": machine(),
        "command": " ".join([sys.executable, *sys.argv]),
        "runs": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "infer_memory" if args.format == "geotiff" else "infer_memory_safe"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Streamed inference: peak RSS and wall time",
        "",
        f"Model: {model_note}; tile {args.tile}; "
        f"{report['machine'].get('cpu_model', '')}, {report['machine']['cpu_count']} CPUs.",
        "",
        "| scene (10 m px) | Mpx | peak RSS (MiB) | wall (s) | s / Mpx | exit |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['size']}^2 | {r['megapixels']} | {r['peak_rss_mib']} | {r['seconds']} | "
        f"{r['seconds_per_megapixel']} | {r['exit_status']} |"
        for r in rows
    ]
    lines += ["", f"Command: `{report['command']}`", ""]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print(f"wrote {args.out / stem}.json and .md", file=sys.stderr)
    return 0 if all(r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
