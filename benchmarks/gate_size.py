"""The precision gate's bf16 loss on Wald pairs of several sizes and places of one scene, and its time.

Usage::

    python benchmarks/gate_size.py SCENE MODEL.onnx [--sizes 1024 512 256] [--label NAME] [--out benchmarks/results]

The gate (:mod:`ssc_edge.runtime.precision`) measures ``mean SRE(fp32) - mean SRE(bf16)`` of the model on the Wald
pair one scale down of the scene's central ``2 GATE_SIZE`` px (``GATE_SIZE`` = 1024 at export; the pair is
1024 x 1024 px). This runs the same measurement (:func:`ssc_edge.runtime.sharpen.gate_measure`, onnxruntime fp32
against OpenVINO bf16) on pairs of each ``--sizes`` side centred at five places of the scene (its centre and the
centres of its four quarters; three places for the largest size), to show how much the loss moves with the place
for a smaller, cheaper pair. Needs a CPU with native bf16 and OpenVINO.

Writes ``gate_size_LABEL.{json,md}`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PLACES = [(0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]


def run(scene: Path, model_path: Path, sizes: list[int]) -> list[dict]:
    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.io.sources import open_band_source
    from ssc_edge.runtime import precision as gate
    from ssc_edge.runtime.session import open_model
    from ssc_edge.runtime.sharpen import gate_measure
    from ssc_edge.scene import Scene
    from ssc_edge.tiling import Tile

    model = open_model(model_path)
    measure = gate_measure(model, "bf16", "openvino")
    rows = []
    with open_band_source(scene) as source:
        height, width = source.shape
        for size in sizes:
            side = 2 * size  # the fine window whose Wald pair is size x size
            for fy, fx in PLACES if size < max(sizes) else PLACES[:3]:
                row = max(0, min(height - side, int(fy * height - side / 2))) // 4 * 4
                col = max(0, min(width - side, int(fx * width - side / 2))) // 4 * 4
                fine, coarse = Tile(row, col, side, side), Tile(row // 2, col // 2, side // 2, side // 2)
                bands = {b: np.asarray(source.read(b, fine), np.float32) for b in FINE_BANDS}
                bands |= {b: np.asarray(source.read(b, coarse), np.float32) for b in COARSE_BANDS}
                window = Scene(bands=bands, fine_pixel_size=source.fine_pixel_size, name=f"{row},{col}")
                pair, reference = gate.wald_gate_pair(window, model.contract, size=size)
                start = time.perf_counter()
                loss = measure(pair, reference)
                seconds = time.perf_counter() - start
                rows.append({"size": size, "place": [fy, fx], "origin": [row, col], "loss_db": round(loss, 4),
                             "seconds": round(seconds, 2)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 512, 256])
    parser.add_argument("--label", default="tile")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from ssc_edge.train.report import machine_info

    rows = run(args.scene, args.model, args.sizes)
    command = "python benchmarks/gate_size.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "machine": machine_info(), "rows": rows}
    (args.out / f"gate_size_{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Precision gate: bf16 loss by pair size and place ({args.label})", "", f"`{command}`", "",
             "| pair side (px) | places | loss dB, each place | min - max | median s per measurement |",
             "|---:|---:|---|---|---:|"]  # fmt: skip
    for size in args.sizes:
        mine = [r for r in rows if r["size"] == size]
        losses = [r["loss_db"] for r in mine]
        seconds = float(np.median([r["seconds"] for r in mine]))
        lines.append(f"| {size} | {len(mine)} | {', '.join(f'{v:.4f}' for v in losses)} | "
                     f"{min(losses):.4f} - {max(losses):.4f} | {seconds:.2f} |")  # fmt: skip
    machine = result["machine"]
    lines += ["", f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores."]
    (args.out / f"gate_size_{args.label}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
