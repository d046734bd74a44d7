"""fit-and-export of the full tile with 754c78b's package (a worktree at /tmp/old754 on PYTHONPATH)."""

import sys

import ssc_edge.cli

assert ssc_edge.cli.__file__.startswith("/tmp/old754"), ssc_edge.cli.__file__
TILE = "/tmp/ssc-edge-full-tile/S2_mosaic_10980"
sys.argv = ["ssc-edge", "fit-and-export", TILE, "-o", "/tmp/ssc-edge-full-tile/old_model.onnx", "--force", "--quiet"]
ssc_edge.cli.main()
