"""End to end, ``infer --precision bf16`` against ``--precision fp32``: where the time goes besides the network.

Usage (a quiet machine; a CPU with AMX or AVX512-BF16 for the bf16 rows)::

    python benchmarks/io_thread.py                                  # 1024^2 and 2048^2 band folders, 3 runs each
    python benchmarks/io_thread.py --sizes 1024 --runs 1            # quick
    python benchmarks/io_thread.py --pythonpath /tmp/base --label before   # another checkout's ssc_edge
    python benchmarks/io_thread.py --input npz --label npz          # the same bands in one .npz (in memory)

For each size a folder of single-band GeoTIFFs of real texture is written (``full_tile.write_scene``: the real scenes
of ``../shared/data`` mirrored in 1024 px squares, no wedge), a width-128 SSC-CNN (the default architecture) is fitted
on it once with ``--epochs 1`` (the weights do not change the speed), and ``ssc-edge infer MODEL FOLDER -o OUT.tif -v``
runs ``--runs`` times per precision, alternating. Recorded per run: the command's wall time, and from its log the
engine's seconds (network, reading, and the I/O thread's write: the product's GeoTIFF strips and the no-reference
quality pass). Medians and the bf16 speed-up (fp32 median wall / bf16 median wall) in
``benchmarks/results/io_thread_<label>.{json,md}`` with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from full_tile import engine_timings

REPO = Path(__file__).resolve().parents[1]


def run_infer(command: list[str], env: dict, log: Path, cwd: Path) -> dict:
    """One ``infer``: wall time, exit code and the engine's timing line (the largest run in the log)."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    row: dict = {"seconds": round(time.perf_counter() - start, 2), "exit_code": code}
    text = log.read_text()
    row.update(engine_timings(text) or {})
    if code != 0:
        row["log_tail"] = text[-1500:]
    return row


def _npz_copy(folder: Path) -> Path:
    """The band folder's ten bands in one ``.npz`` beside it (DN; the in-memory path of ``infer``)."""
    import numpy as np

    from ssc_edge.io import read_scene

    path = folder.with_suffix(".npz")
    if not path.is_file():
        np.savez(path, **read_scene(folder).bands)
    return path


def median_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r and r.get("exit_code") == 0]
    return round(statistics.median(values), 2) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="Sides of the 10 m grid, px.")
    parser.add_argument("--runs", type=int, default=3, help="Runs per precision and size (alternating).")
    parser.add_argument("--model", type=Path, help="Model to use (default: fit a width-128 model, 1 epoch).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ssc-edge-io-thread"), help="Scratch folder.")
    parser.add_argument("--infer-args", default="", help="More infer options for every run.")
    what = "Sharpen the band folder, or the same bands in one .npz (read whole, in memory)."
    parser.add_argument("--input", choices=("folder", "npz"), default="folder", help=what)
    parser.add_argument("--pythonpath", type=Path, help="Run this checkout's ssc_edge (PYTHONPATH) instead.")
    parser.add_argument("--label", default="amx", help="Result name.")
    parser.add_argument("--note", default="", help="A line about the conditions.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    from full_tile import write_scene

    from ssc_edge.runtime.precision import detected_flags
    from ssc_edge.train.report import machine_info

    env = dict(os.environ)
    # run from the scratch folder: ``python -c`` puts the working directory first on sys.path
    exe = [sys.executable, "-c", "from ssc_edge.cli import main; main()"]
    if args.pythonpath is not None:
        env["PYTHONPATH"] = str(args.pythonpath.resolve())
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "command": ("python benchmarks/io_thread.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip(),
        "note": args.note,
        "machine": machine_info(),
        "bf16_flags": sorted(f for f in detected_flags() if f in ("amx_bf16", "amx_tile", "avx512_bf16")),
        "load_average_start": [round(v, 1) for v in os.getloadavg()],
        "sizes": {},
    }
    for size in args.sizes:
        folder = args.work / f"S2_mosaic_{size}"
        if not (folder / "T31TDH_20260101T000000_B12.tif").is_file():
            write_scene(folder, size, block=1024, wedge=0.0)
        scene = folder if args.input == "folder" else _npz_copy(folder)
        model = args.model
        if model is None:
            model = args.work / f"w128_{size}.onnx"
            if not model.is_file():
                fit = [*exe, "fit-and-export", str(folder), "-o", str(model), "--epochs", "1", "-q", "--force"]
                subprocess.run(fit, check=True, env=env, stdout=subprocess.DEVNULL, cwd=args.work)
        rows: dict[str, list[dict]] = {"fp32": [], "bf16": []}
        for k in range(args.runs):
            for precision in rows:
                output = args.work / f"out_{size}_{precision}.tif"
                command = [*exe, "infer", str(model), str(scene), "-o", str(output), "-f", "-v"]
                command += ["--precision", precision, *shlex.split(args.infer_args)]
                row = run_infer(command, env, args.work / f"infer_{size}_{precision}_{k}.log", args.work)
                rows[precision].append(row)
                print(json.dumps({"size": size, "precision": precision, **row}), flush=True)
        summary = {p: {key: median_of(r, key) for key in ("seconds", "network", "read", "write", "engine")}
                   for p, r in rows.items()}  # fmt: skip
        fp32, bf16 = summary["fp32"]["seconds"], summary["bf16"]["seconds"]
        summary["bf16_speedup_end_to_end"] = round(fp32 / bf16, 2) if fp32 and bf16 else None
        nf, nb = summary["fp32"]["network"], summary["bf16"]["network"]
        summary["bf16_speedup_network"] = round(nf / nb, 2) if nf and nb else None
        result["sizes"][str(size)] = {"model": str(model), "runs": rows, "median": summary}
    result["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"io_thread_{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"io_thread_{args.label}.md").write_text(render(result))
    print(render(result))
    return 0


def render(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# infer end to end: bf16 against fp32",
        "",
        f"`{result['command']}`",
        "",
        f"Machine: {m.get('cpu', m)}; bf16 flags {', '.join(result['bf16_flags']) or 'none'}; load average "
        f"{result['load_average_start']} -> {result['load_average_end']}. {result['note']}",
        "",
        "Medians, s (network, read and write are the engine's own clocks; read and write run in the I/O thread, "
        "overlapped with the network).",
        "",
        "| size | precision | wall | network | read | write (strips + quality) | bf16 speed-up end to end | network |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, entry in result["sizes"].items():
        med = entry["median"]
        for p in ("fp32", "bf16"):
            s = med[p]
            up = (f"{med['bf16_speedup_end_to_end']}x", f"{med['bf16_speedup_network']}x") if p == "bf16" else ("", "")
            cells = [f"{size}^2", p, s["seconds"], s["network"], s["read"], s["write"], *up]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
