"""Precision x provider/backend on this machine: ms per window, GFLOP/s, quality loss, tiled vs whole image.

Usage (from the repository root; the CPU should be otherwise idle)::

    python benchmarks/precision.py                                   # shipped demo model, demo scene
    python benchmarks/precision.py --model /tmp/reyk/reyk.onnx --scene ../shared/data/reykjavik_cell_RR.mat
    python benchmarks/precision.py ... --ep-python /tmp/venv-ovep/bin/python   # + onnxruntime-openvino rows

Rows (each the public runtime API: ``load_model`` for timing, ``Sharpener`` for quality):

- onnxruntime CPU fp32 (the reference of every loss);
- onnxruntime CPU fp16 and int8: models made from MODEL by ``optimize_model`` (int8 calibrated on SCENE;
  written even when they fail the gate, the loss column says so; needs the ``onnx`` package);
- OpenVINO's own runtime (``openvino``, extra ``fast``) fp32 and bf16 (the fp32 model with the bf16
  inference-precision hint);
- with ``--ep-python``: onnxruntime's OpenVINO execution provider (``onnxruntime-openvino``, which replaces
  ``onnxruntime`` and so lives in a second environment) fp32 and bf16, run by that interpreter in worker mode.

bf16 rows run only on a CPU with ``amx_bf16`` or ``avx512_bf16``; elsewhere OpenVINO would compute in f32,
so the row says "not native" instead of timing f32 under a bf16 label.

Columns: median ms of ``--runs`` runs (after ``--warmup``) of one (1, tile, tile, 10) window (the scene's
full-scale input, reflected to the tile when the scene is smaller); GFLOP/s = FLOPs of the fp32 graph at that
shape (one multiply-add = 2) / median; mean SRE of the tiled result (windows of ``--quality-tile``) against the
scene's reference; loss = mean SRE(onnxruntime fp32) - mean SRE(row), dB; max |tiled - whole| in DN between
the tiled result and the same configuration run as one window of the whole scene.

Writes ``--out``.json and ``--out``.md with the machine (CPU flags included) and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _window(scene, contract, tile: int) -> np.ndarray:
    from ssc_edge import wald

    x = wald.full_scale_input(scene, upsampling=contract.upsampling) / np.float32(contract.scale)
    pad = [(0, max(0, tile - n)) for n in x.shape[:2]] + [(0, 0)]
    x = np.pad(x, pad, mode="reflect")[:tile, :tile]
    return np.ascontiguousarray(x[None], dtype=np.float32)


def _row(model: Path, scene, *, provider: str, precision: str, tile: int, quality_tile: int, runs: int, warmup: int):
    """Time one window, sharpen the scene tiled and whole; numbers only (no loss: the parent computes it)."""
    from ssc_edge.metrics import signal_to_reconstruction_error
    from ssc_edge.runtime import Sharpener, load_model

    loaded = load_model(model, provider=provider, precision=precision)
    contract = loaded.contract
    shape = (
        (1, tile, tile, contract.channels_in) if contract.layout == "NHWC" else (1, contract.channels_in, tile, tile)
    )
    timed = load_model(
        model,
        provider=provider,
        precision=precision,
        input_shape=shape,
        dimension_names={"batch": 1, "height": tile, "width": tile},
        memory_pattern=False,
    )
    x = _window(scene, contract, tile)
    for _ in range(warmup):
        timed.run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        timed.run(x)
        times.append(time.perf_counter() - start)
    tiled = Sharpener(model, provider=provider, precision=precision, tile=quality_tile).sharpen(scene)
    whole = Sharpener(model, provider=provider, precision=precision, tile=max(scene.shape)).sharpen(scene)
    sre = float(np.mean(signal_to_reconstruction_error(scene.reference, tiled)))
    return {
        "ms": 1e3 * float(np.median(times)),
        "ms_all": [round(1e3 * t, 2) for t in times],
        "mean_sre_db": sre,
        "max_tiled_vs_whole_dn": float(np.abs(tiled - whole).max()),
        "tiled": tiled,
    }


def _rows_here(configs, args, scene) -> list[dict]:
    from ssc_edge.errors import SscEdgeError

    rows = []
    for label, model, provider, precision in configs:
        row = {"configuration": label, "provider": provider, "precision": precision, "model": str(model)}
        try:
            row.update(
                _row(
                    Path(model),
                    scene,
                    provider=provider,
                    precision=precision,
                    tile=args.tile,
                    quality_tile=args.quality_tile,
                    runs=args.runs,
                    warmup=args.warmup,
                )
            )
            row["status"] = "ok"
        except SscEdgeError as exc:
            row.update(status="not available", reason=str(exc))
        rows.append(row)
    return rows


def _scene(args):
    from ssc_edge.demo import demo_scene
    from ssc_edge.io import read_scene

    return demo_scene(size=256) if args.scene is None else read_scene(Path(args.scene))


def _worker(args) -> None:
    """Worker mode (``--ep-python``): run the given configurations, print JSON (the tiled result as .npy paths)."""
    scene = _scene(args)
    configs = json.loads(args.worker)
    rows = _rows_here(configs, args, scene)
    for i, row in enumerate(rows):
        if "tiled" in row:
            path = Path(args.worker_dir) / f"tiled{i}.npy"
            np.save(path, row.pop("tiled"))
            row["tiled_path"] = str(path)
    import onnxruntime

    print(json.dumps({"rows": rows, "onnxruntime": onnxruntime.__version__}))


def _optimized(model: Path, scene, folder: Path) -> dict[str, Path]:
    """fp16 and int8 versions of ``model`` (forced past the gate: the table shows the loss)."""
    from ssc_edge.errors import SscEdgeError
    from ssc_edge.runtime.optimize import optimize_model

    made = {}
    for precision in ("fp16", "int8"):
        try:
            out = folder / f"{precision}.onnx"
            optimize_model(model, precision=precision, out_path=out, calibration_scene=scene, force=True)
            made[precision] = out
        except SscEdgeError as exc:
            print(f"{precision}: not made ({exc})", file=sys.stderr)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="fp32 ssc-edge model (default: models/demo.onnx)")
    parser.add_argument("--scene", type=Path, default=None, help="scene with a reference (default: the demo scene)")
    parser.add_argument("--tile", type=int, default=512, help="timed window side, px")
    parser.add_argument("--quality-tile", type=int, default=96, help="window side of the tiled quality run, px")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--ep-python", default=None, help="python of an environment with onnxruntime-openvino")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "precision")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        _worker(args)
        return

    from ssc_edge.metrics import signal_to_reconstruction_error
    from ssc_edge.runtime.bench import machine_info
    from ssc_edge.runtime.flops import count_flops
    from ssc_edge.runtime.infer import default_model_path
    from ssc_edge.runtime.openvino_backend import openvino_version
    from ssc_edge.runtime.precision import detected_flags, native_bf16

    model = args.model or default_model_path()
    scene = _scene(args)
    if scene.reference is None:
        raise SystemExit(f"{args.scene}: the scene needs a reference (an RR file or the demo scene)")
    flops = count_flops(model, batch=1, height=args.tile, width=args.tile).total
    native = native_bf16(detected_flags())
    with tempfile.TemporaryDirectory(prefix="ssc-edge-precision-") as tmp:
        optimized = _optimized(model, scene, Path(tmp))
        configs = [("onnxruntime CPU fp32", str(model), "cpu", "fp32")]
        configs += [(f"onnxruntime CPU {p} (optimize)", str(path), "cpu", p) for p, path in optimized.items()]
        configs += [("OpenVINO runtime fp32", str(model), "openvino", "fp32")]
        configs += [("OpenVINO runtime bf16 hint", str(model), "openvino", "bf16")]
        rows = _rows_here(configs, args, scene)
        if args.ep_python:
            ep = [("onnxruntime-openvino EP fp32", str(model), "openvino", "fp32")]
            ep += [("onnxruntime-openvino EP bf16 hint", str(model), "openvino", "bf16")] if native else []
            command = [args.ep_python, __file__, "--worker", json.dumps(ep), "--worker-dir", tmp]
            command += ["--tile", str(args.tile), "--quality-tile", str(args.quality_tile)]
            command += ["--runs", str(args.runs), "--warmup", str(args.warmup)]
            command += ["--scene", str(args.scene)] if args.scene else []
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            worker = json.loads(done.stdout.strip().splitlines()[-1])
            for row in worker["rows"]:
                if "tiled_path" in row:
                    row["tiled"] = np.load(row.pop("tiled_path"))
                row["onnxruntime"] = worker["onnxruntime"]
                rows.append(row)
            if not native:
                rows.append({"configuration": "onnxruntime-openvino EP bf16 hint", "status": "not available",
                             "reason": "this CPU has neither AMX-BF16 nor AVX512-BF16"})  # fmt: skip
    reference = rows[0]["tiled"]
    for row in rows:
        tiled = row.pop("tiled", None)
        if tiled is not None:
            row["loss_db"] = rows[0]["mean_sre_db"] - row["mean_sre_db"]
            row["max_vs_fp32_dn"] = float(np.abs(tiled - reference).max())
            row["gflops"] = flops / (row["ms"] / 1e3) / 1e9
    machine = machine_info()
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": str(model),
        "scene": str(args.scene or "demo scene 256x256"),
        "scene_shape": list(scene.shape),
        "tile": args.tile,
        "quality_tile": args.quality_tile,
        "runs": args.runs,
        "gflop_per_window": flops / 1e9,
        "bf16_native": native,
        "openvino": openvino_version(),
        "machine": machine,
        "load_average_at_end": os.getloadavg(),
        "rows": rows,
        "bicubic_mean_sre_db": _bicubic(scene, signal_to_reconstruction_error),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))


def _bicubic(scene, sre) -> float:
    from ssc_edge.evaluation import bicubic_baseline

    return float(np.mean(sre(scene.reference, bicubic_baseline(scene))))


def _markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"`{report['command']}`",
        "",
        f"Model `{report['model']}`, scene {report['scene']} ({report['scene_shape'][0]}x{report['scene_shape'][1]}), "
        f"window {report['tile']}^2 ({report['gflop_per_window']:.1f} GFLOP), median of {report['runs']} runs; "
        f"quality tiled with {report['quality_tile']}^2 windows (bicubic {report['bicubic_mean_sre_db']:.2f} dB). "
        f"CPU: {machine.get('cpu')}, flags {', '.join(machine.get('cpu_flags', [])) or 'none of interest'}; "
        f"bf16 native: {report['bf16_native'] or 'no'}; openvino {report['openvino']}; "
        f"load average at the end {', '.join(f'{v:.2f}' for v in report['load_average_at_end'])}.",
        "",
        "| configuration | ms / window | GFLOP/s | mean SRE (dB) | loss (dB) | max diff vs fp32 (DN) "
        "| max tiled vs whole (DN) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        if row.get("status") != "ok":
            lines.append(f"| {row['configuration']} | {row.get('status')}: {row.get('reason', '')} | | | | | |")
            continue
        lines.append(
            f"| {row['configuration']} | {row['ms']:.0f} | {row['gflops']:.0f} | {row['mean_sre_db']:.3f} | "
            f"{row['loss_db']:+.4f} | {row['max_vs_fp32_dn']:.3g} | {row['max_tiled_vs_whole_dn']:.3g} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
