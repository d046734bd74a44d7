"""FLOPs per 10 m pixel of the 12-band product: two models (20 m and 60 m) against one two-output network.

Usage::

    python benchmarks/product_flops.py          # a few seconds; prints a table, writes product_flops.json

Counts the exported ONNX graphs (``ssc_edge.runtime.flops.count_flops``, multiply-add = 2) of the default
architecture (width 128) built untrained with the 20 m model's channels (10 in, 6 out), the 60 m model's
(12 in, 2 out) and those of a single network that would give all eight sharpened bands (12 in, 8 out).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(REPO))
    from ssc_edge.runtime.flops import count_flops
    from ssc_edge.train.export import keras_to_onnx, pad_concat_channels
    from ssc_edge.train.model import build_ssc_cnn

    side = 256
    rows = {}
    for name, (cin, cout) in {"20m": (10, 6), "60m": (12, 2), "one-network-8-outputs": (12, 8)}.items():
        proto = pad_concat_channels(keras_to_onnx(build_ssc_cnn(input_channels=cin, output_channels=cout)))
        rows[name] = count_flops(proto, height=side, width=side).total / side**2 / 1e6
    rows["two-models"] = rows["20m"] + rows["60m"]
    out = REPO / "benchmarks" / "results" / "product_flops.json"
    out.write_text(json.dumps({"command": "python benchmarks/product_flops.py", "mflop_per_px": rows}, indent=1) + "\n")
    for name, value in rows.items():
        print(f"{name:<24} {value:.3f} MFLOP per 10 m px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
