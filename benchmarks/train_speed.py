"""Fit time of a ``heldout`` SSC-CNN fit on the Reykjavik RR scene: ssc-edge's loop against plain ``model.fit``.

Usage (CPU quiet, nothing else running)::

    python benchmarks/train_speed.py                       # 200 epochs, every method
    python benchmarks/train_speed.py --epochs 20           # short run; times are also extrapolated to 200

Methods
-------
keras-fit      ``model.compile(Adam, "mse")`` + ``model.fit(batch_size=64, shuffle=True)`` on the same patches
ssc-edge       :func:`ssc_edge.train.fit_model` (one ``tf.function`` per epoch over in-memory patches), float32
ssc-edge-xla   the same with ``jit_compile=True``
ssc-edge-bf16  the same in ``mixed_bfloat16`` (float32 weights and export)

Writes ``benchmarks/results/train_speed.{json,md}`` with the machine and the exact command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
METHODS = ("keras-fit", "ssc-edge", "ssc-edge-xla", "ssc-edge-bf16")


def _keras_fit(inputs: np.ndarray, target: np.ndarray, config, epochs: int) -> float:
    import keras

    from ssc_edge.train.fit import extract_patches
    from ssc_edge.train.model import build_ssc_cnn

    start = time.perf_counter()
    scale = float(target.max())
    x = extract_patches(inputs / scale, size=config.patch, stride=config.stride)
    y = extract_patches(target / scale, size=config.patch, stride=config.stride)
    model = build_ssc_cnn(config.model, seed=config.seed)
    model.compile(keras.optimizers.Adam(config.learning_rate), "mse")
    model.fit(x, y, batch_size=config.batch_size, epochs=epochs, shuffle=True, verbose=0)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--scene", type=Path, default=DATA / "reykjavik_cell_RR.mat")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    from ssc_edge.io import read_scene
    from ssc_edge.train.fit import FitConfig, fit_model, training_data
    from ssc_edge.train.report import machine_info

    scene = read_scene(args.scene)
    rows = []
    for method in args.methods:
        config = FitConfig(
            epochs=args.epochs,
            jit_compile=method == "ssc-edge-xla",
            precision="mixed_bfloat16" if method == "ssc-edge-bf16" else "float32",
        )
        inputs, target = training_data(scene, config)
        kept = "last epoch"
        if method == "keras-fit":
            seconds = _keras_fit(inputs, target, config, args.epochs)
        else:
            fit = fit_model(inputs, target, config)
            seconds, kept = fit.seconds, fit.weights_kept
        row = {
            "method": method,
            "epochs": args.epochs,
            "seconds": round(seconds, 1),
            "seconds_per_200_epochs": round(seconds * 200 / args.epochs, 1),
            "weights_kept": kept,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    command = ("python benchmarks/train_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    result = {"command": command, "scene": str(args.scene.name), "machine": machine_info(), "rows": rows}
    (args.out / "train_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Training speed: heldout fit of {args.scene.name}\n",
        f"Command: `{command}`  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores\n",
        "| method | epochs | weights kept | wall time (s) | per 200 epochs (s) |",
        "|---|---|---|---|---|",
        *(
            f"| {r['method']} | {r['epochs']} | {r['weights_kept']} | {r['seconds']} | {r['seconds_per_200_epochs']} |"
            for r in rows
        ),
    ]
    (args.out / "train_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
