"""onnxruntime CPU speed of SSC-CNN with skip width 25 (the paper's) against 32 (a multiple of 16).

The output blocks 2 and 3 convolve ``concat(previous 128, skip)``: 153 input channels with the paper's skip
width of 25. onnxruntime's fastest CPU convolution path (MLAS NCHWc, reached through the NCHWc graph
transformer) needs channel counts that are multiples of its block size (16 on AVX-512), so those two
convolutions fall back to the generic im2col + GEMM path; a profile of the trained Reykjavik model puts
46 % of the run time in them. Skip width 32 (160 channels) does more arithmetic but takes the fast path.
This script measured the size of that lever on random weights (speed does not depend on the weights);
``fit-and-export`` now takes it with the paper's architecture by padding the 25 skip filters with 7
all-zero filters (:func:`ssc_edge.train.export.pad_concat_channels`), and ``benchmarks/cpu_speed.py``
times the padded export of a trained model against the unpadded one.

Usage (CPU quiet, nothing else running)::

    python benchmarks/skip_width_speed.py --tile 512 --runs 7 --out benchmarks/results/skip_width_speed

Writes ``OUT.json`` with the machine, versions and the exact command. Needs the ``train`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=512, help="input side, pixels")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per configuration (after one warm-up)")
    parser.add_argument("--widths", type=int, nargs="+", default=[25, 32], help="skip widths to compare")
    parser.add_argument("--out", type=Path, help="write OUT.json")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from ssc_edge.train.export import keras_to_onnx
    from ssc_edge.train.model import ModelConfig, build_ssc_cnn
    from ssc_edge.train.report import machine_info

    sessions = {}
    for width in args.widths:
        proto = keras_to_onnx(build_ssc_cnn(ModelConfig(skip_width=width)), layout="NHWC")
        sessions[width] = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).random((1, args.tile, args.tile, 10)) * 0.3).astype(np.float32)
    times: dict[int, list[float]] = {width: [] for width in sessions}
    for run in range(args.runs + 1):  # interleaved, so that load from other processes falls on all alike
        for width, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: x})
            if run:  # the first round is the warm-up
                times[width].append(time.perf_counter() - start)
        print(f"round {run}/{args.runs}", file=sys.stderr, flush=True)

    base = float(np.median(times[args.widths[0]]))
    rows = []
    for width, samples in times.items():
        median = float(np.median(samples))
        rows.append({"skip_width": width, "median_ms": round(median * 1e3, 1), "speedup": round(base / median, 3)})
        print(f"skip width {width:3d}: median {median * 1e3:8.1f} ms   {base / median:.3f}x width {args.widths[0]}")
    if args.out:
        command = "python benchmarks/skip_width_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
        result = {
            "command": command.strip(),
            "machine": machine_info(),
            "onnxruntime": ort.__version__,
            "tile": args.tile,
            "runs": args.runs,
            "rows": rows,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
